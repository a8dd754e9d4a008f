import Foundation

/// Runs a blocking call (syncfs on a stick that is being pulled can block
/// for minutes) on a thread of its own, and stops waiting for it as soon as
/// the task is cancelled: a SIGTERM must end the visit within a second or
/// two, not when the kernel gives up. The call itself runs on; what it
/// returns after the cancellation is dropped.
func cancellablyBlocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    let once = ResumeOnce<T>()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
            once.attach(continuation)
            Thread.detachNewThread { once.resume(Result { try work() }) }
        }
    } onCancel: {
        once.resume(.failure(CancellationError()))
    }
}

/// A continuation resumed by whichever comes first, the call or the
/// cancellation; a result that comes before the continuation is kept.
private final class ResumeOnce<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var continuation: CheckedContinuation<T, any Error>?
    private var early: Result<T, any Error>?
    private var done = false

    func attach(_ continuation: CheckedContinuation<T, any Error>) {
        lock.lock()
        if let early {
            lock.unlock()
            continuation.resume(with: early)
            return
        }
        self.continuation = continuation
        lock.unlock()
    }

    func resume(_ result: Result<T, any Error>) {
        lock.lock()
        guard !done else {
            lock.unlock()
            return
        }
        done = true
        guard let continuation else {
            early = result
            lock.unlock()
            return
        }
        self.continuation = nil
        lock.unlock()
        continuation.resume(with: result)
    }
}
