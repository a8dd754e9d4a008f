import Foundation
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// Tells people how a visit goes: a log line per step, and under systemd a
/// `STATUS=` line (sd_notify) that `systemctl status` shows.
public struct VisitProgress: Sendable {
    public var logger: Logger

    public init(logger: Logger) {
        self.logger = logger
    }

    /// With -v each line also carries the peak resident size so far, which
    /// shows the step that grew it.
    public func step(_ message: String, _ metadata: Logger.Metadata = [:]) {
        let memory: Logger.Metadata = logger.logLevel <= .debug ? ["peak-rss-kib": "\(peakResidentKiB())"] : [:]
        logger.info("\(message)", metadata: metadata.merging(memory) { $1 })
        Self.notifySystemd("STATUS=\(message)")
    }

    /// Sends one datagram to `$NOTIFY_SOCKET`, as sd_notify(3) does; without
    /// the variable (not under systemd) it does nothing.
    static func notifySystemd(_ state: String) {
        guard var path = ProcessInfo.processInfo.environment["NOTIFY_SOCKET"], !path.isEmpty else { return }
        if path.hasPrefix("@") { path = "\0" + path.dropFirst() }
        let socket = Glibc.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard socket >= 0 else { return }
        defer { close(socket) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return }
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            buffer.copyBytes(from: bytes)
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count)
        _ = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                Array(state.utf8).withUnsafeBytes { sendto(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), address, length) }
            }
        }
    }
}

/// This process's own peak resident size in KiB (getrusage RUSAGE_SELF),
/// without the commands it ran.
public func peakResidentKiB() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return usage.ru_maxrss
}
