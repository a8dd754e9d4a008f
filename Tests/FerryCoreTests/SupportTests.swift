import SystemPackage
import Testing

@testable import FerryCore

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Support: the hex codec and the syscall layer")
struct SupportTests {
    @Test("hex encodes lower case and decodes only what it encodes")
    func hex() {
        #expect(Hex.encode([0x00, 0x0f, 0xa5, 0xff]) == "000fa5ff")
        #expect(Hex.decode("000fa5ff") == [0x00, 0x0f, 0xa5, 0xff])
        #expect(Hex.decode("") == [])
        for bad in ["abc", "0G", "AB", "+f", " f", "0x"] {
            #expect(Hex.decode(bad) == nil, "\(bad)")
        }
    }

    @Test("a 64-bit value is 16 hex digits, zero-padded, so that ids sort as numbers do")
    func hexValue() {
        #expect(Hex.encode(UInt64(0)) == "0000000000000000")
        #expect(Hex.encode(UInt64(0xabc)) == "0000000000000abc")
        #expect(Hex.encode(UInt64.max) == "ffffffffffffffff")
    }

    @Test("retryingEINTR calls again after EINTR, for any integer result, and throws any other errno")
    func eintr() throws {
        var calls = 0
        let count = try retryingEINTR { () -> Int in
            calls += 1
            if calls < 3 {
                errno = EINTR
                return -1
            }
            return 42
        }
        #expect(count == 42)
        #expect(calls == 3)
        #expect(throws: Errno.badFileDescriptor) {
            try retryingEINTR { () -> Int32 in
                errno = EBADF
                return -1
            }
        }
    }

    @Test("readFully reads to the end of a pipe across short reads")
    func readFullyAcrossShortReads() throws {
        let (output, input) = try makePipe()
        try writeAll(input.rawValue, Array(repeating: 7, count: 1000)[...])
        try input.close()
        var buffer = [UInt8](repeating: 0, count: 4096)
        #expect(try readFully(output.rawValue, into: &buffer) == 1000)
        try output.close()
    }
}
