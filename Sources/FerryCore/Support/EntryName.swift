/// The name of a directory entry as the kernel gives it: bytes, not always
/// UTF-8. A name read from a medium is kept as these bytes from `readdir`
/// to the `unlinkat` that removes it, so a name that does not decode is
/// still the entry it names; it is shown escaped (`sym\xFF`).
public struct EntryName: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    public init(_ name: String) {
        bytes = Array(name.utf8)
    }

    /// The name as text, when it is valid UTF-8; nil otherwise.
    public var string: String? {
        String(validating: bytes, as: UTF8.self)
    }

    /// For terminals and logs: control characters escaped as `printable`
    /// escapes them, and each byte that is not UTF-8 as `\xNN`.
    public var description: String {
        var shown = ""
        var parser = Unicode.UTF8.ForwardParser()
        var input = bytes.makeIterator()
        var offset = 0
        while true {
            switch parser.parseScalar(from: &input) {
            case .valid(let encoded):
                offset += encoded.count
                let scalar = Unicode.UTF8.decode(encoded)
                if scalar.properties.generalCategory == .control || scalar == "\u{7F}" {
                    shown += scalar.escaped(asASCII: true)
                } else {
                    shown.unicodeScalars.append(scalar)
                }
            case .error(let length):
                for byte in bytes[offset..<offset + length] {
                    shown += "\\x" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
                }
                offset += length
            case .emptyInput:
                return shown
            }
        }
    }

    /// Whether ferry may use the name inside a directory: not empty, not
    /// `.` or `..`, and with no `/` or NUL in it.
    var isPlain: Bool {
        !bytes.isEmpty && bytes != [0x2E] && bytes != [0x2E, 0x2E] && !bytes.contains(0x2F) && !bytes.contains(0)
    }

    /// Calls `body` with the name as a NUL-terminated C string.
    func withCString<Result>(_ body: (UnsafePointer<CChar>) -> Result) -> Result {
        (bytes + [0]).withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { body($0.baseAddress!) }
        }
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
