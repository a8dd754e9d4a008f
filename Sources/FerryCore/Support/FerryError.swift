/// The exit contract of every ferry command (DESIGN.md section 6).
public enum ExitStatus: Int32, Sendable {
    /// The work is done and the medium is safe to remove.
    case done = 0
    /// The work failed; the log and the journal say why.
    case failed = 1
    /// The medium is not ours, and it was left alone.
    case notOurs = 2
    /// The medium was pulled out, or ferry was stopped, before the work was
    /// done. Nothing is lost, and the next plug-in carries on; ferry@.service
    /// counts it as success, because a pull is not a fault of the host.
    case interrupted = 3
}

/// An error the user sees as one line that says what failed and what to do.
///
/// Each area of ferry has its own error type that conforms to this protocol.
public protocol FerryError: Error, CustomStringConvertible, Sendable {
    var exitStatus: ExitStatus { get }
}

extension FerryError {
    public var exitStatus: ExitStatus { .failed }
}

/// Shows untrusted text (labels, file names read from a stick) on one line,
/// with control characters escaped and the length capped.
public func printable(_ text: String, limit: Int = 80) -> String {
    var shown = ""
    for scalar in text.unicodeScalars {
        if shown.unicodeScalars.count >= limit {
            shown += "…"
            break
        }
        if scalar.properties.generalCategory == .control || scalar == "\u{7F}" {
            shown += scalar.escaped(asASCII: true)
        } else {
            shown.unicodeScalars.append(scalar)
        }
    }
    return shown
}

/// Text for a terminal or a log: every control character escaped, newlines
/// too, so that one line stays one line whatever a stick, a peer's record, a
/// pool or a dataset put into it. Nothing is cut: use `printable` for that.
public func terminalLine(_ text: String) -> String {
    guard text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control || $0 == "\u{7F}" }) else { return text }
    return printable(text, limit: .max)
}

/// Lines of text as `terminalLine` makes each one, joined by the newlines
/// ferry itself writes.
public func terminalText(_ lines: [String]) -> String {
    lines.map(terminalLine).joined(separator: "\n")
}
