import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

// The one place where ferry's own system calls meet EINTR, as swift-system's
// `valueOrErrno` and `nothingOrErrno` are for it.

/// Calls `call` again while it fails with EINTR, and turns -1 into `Errno`.
/// For any call that returns -1 on failure: `Int32` (open, fstat), `Int`
/// (read, write). Never for close(2): see `closeOnce`.
@discardableResult
func retryingEINTR<Result: FixedWidthInteger>(_ call: () -> Result) throws(Errno) -> Result {
    while true {
        let result = call()
        if result != -1 { return result }
        let error = Errno(rawValue: errno)
        if error != .interrupted { throw error }
    }
}

/// close(2), exactly once. On Linux the descriptor is released even when
/// close fails with EINTR, so a retry could close a descriptor another
/// thread has just been given; EINTR counts as closed. Other errors (EIO
/// of a write that failed late) are thrown.
func closeOnce(_ fd: Int32) throws(Errno) {
    guard close(fd) == -1 else { return }
    let error = Errno(rawValue: errno)
    if error != .interrupted { throw error }
}

/// Writes all of `bytes` to `fd`, retrying short writes and EINTR.
func writeAll(_ fd: Int32, _ bytes: ArraySlice<UInt8>) throws(Errno) {
    var written = 0
    while written < bytes.count {
        written += try retryingEINTR {
            bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
        }
    }
}

/// Writes all of `bytes` to `fd`, retrying short writes and EINTR.
func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(Errno) {
    var written = 0
    while written < bytes.count {
        written += try retryingEINTR { write(fd, bytes.baseAddress! + written, bytes.count - written) }
    }
}

/// Reads from `fd` into `buffer` until it is full or the input ends, and
/// returns how many bytes it read. With `offset` it reads with pread(2)
/// from there instead of from the file position.
func readFully(_ fd: Int32, into buffer: inout [UInt8], offset: Int? = nil) throws(Errno) -> Int {
    var filled = 0
    while filled < buffer.count {
        let count = try retryingEINTR {
            buffer.withUnsafeMutableBytes { bytes in
                if let offset {
                    pread(fd, bytes.baseAddress! + filled, bytes.count - filled, off_t(offset + filled))
                } else {
                    read(fd, bytes.baseAddress! + filled, bytes.count - filled)
                }
            }
        }
        if count == 0 { break }
        filled += count
    }
    return filled
}
