import Foundation
import Logging

/// Writes one line per event to standard error.
///
/// Under systemd (`JOURNAL_STREAM` set) each line starts with a `<N>` syslog
/// priority, which journald reads, and carries no timestamp of its own.
public struct FerryLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    private let underJournal: Bool

    public init(label: String, level: Logger.Level = .info) {
        self.logLevel = level
        self.underJournal = ProcessInfo.processInfo.environment["JOURNAL_STREAM"] != nil
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { _, new in new }
        var line = underJournal ? "<\(Self.priority(event.level))>" : "ferry: "
        if !underJournal, event.level >= .warning {
            line += "\(event.level): "
        }
        line += terminalLine("\(event.message)")
        for key in merged.keys.sorted() {
            line += " \(key)=" + terminalLine("\(merged[key]!)")
        }
        line += "\n"
        FileHandle.standardError.write(Data(line.utf8))
    }

    private static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }
}

/// Sends each event to syslog (the journal, where systemd runs), as the
/// seed's `logit` did: `ferry receive` runs under nncp-toss, whose standard
/// error nobody reads. Where no syslog listens, the lines go nowhere, and
/// the standard-error handler still has them.
public struct SyslogLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    /// openlog keeps the pointer it is given, so the name lives for the process.
    nonisolated(unsafe) private static let identity: UnsafeMutablePointer<CChar> = strdup("ferry")

    public init(label: String, level: Logger.Level = .info) {
        self.logLevel = level
        openlog(Self.identity, LOG_PID, LOG_DAEMON)
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { _, new in new }
        var line = terminalLine("\(event.message)")
        for key in merged.keys.sorted() {
            line += " \(key)=" + terminalLine("\(merged[key]!)")
        }
        let priority: Int32 =
            switch event.level {
            case .trace, .debug: LOG_DEBUG
            case .info: LOG_INFO
            case .notice: LOG_NOTICE
            case .warning: LOG_WARNING
            case .error: LOG_ERR
            case .critical: LOG_CRIT
            }
        line.withCString { text in
            withVaList([text]) { vsyslog(priority, "%s", $0) }
        }
    }
}
