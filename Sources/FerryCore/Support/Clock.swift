import Foundation

/// The source of wall-clock time, so that tests can fix it.
public protocol WallClock: Sendable {
    func now() -> Date
}

public struct SystemClock: WallClock {
    public init() {}
    public func now() -> Date { Date() }
}

extension Date {
    /// RFC 3339 in UTC with whole seconds, as the journal and the identity use.
    public var rfc3339: String {
        var style = Date.ISO8601FormatStyle()
        style.timeZone = TimeZone(identifier: "UTC")!
        return self.formatted(style)
    }

    /// Parses what `rfc3339` writes; nil for anything else.
    public init?(rfc3339 text: String) {
        guard let date = try? Date(text, strategy: .iso8601) else { return nil }
        self = date
    }
}
