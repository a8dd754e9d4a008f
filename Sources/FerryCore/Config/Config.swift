import Foundation
import TOMLKit

/// What this host is in the setup (DESIGN.md section 1).
public enum Role: String, Sendable, CaseIterable {
    case spooler, backupsvr, laptop
}

/// ferry's configuration, from `/etc/ferry/ferry.toml` (DESIGN.md section 6).
public struct FerryConfig: Sendable, Equatable {
    public static let defaultPath = "/etc/ferry/ferry.toml"

    /// The file this was read from, for error messages.
    public var path: String
    public var role: Role
    /// This node's name among the others (`ferry init --name`): the name on
    /// its card, and on a laptop the HOST of every destination it sends.
    public var name: String?
    public var nncpConfig = "/etc/nncp.hjson"
    /// NNCP commands run as this user; empty means as ferry's own user.
    public var nncpUser = "nncp"
    /// The NNCP node across the gap; nil until `ferry pair` has set it.
    public var peer: String?
    public var stateDir = "/var/lib/ferry"
    public var mountRoot = "/run/ferry"
    /// Run after "safe to remove" (a beep, an LED); empty for none.
    public var notifyCommand: [String] = []
    public var exchange = Exchange()
    public var status = Status()
    public var receive = Receive()
    public var rotation = Rotation()
    public var send = Send()
    /// `[retention]` (backupsvr): how drives are thinned; empty keeps everything.
    public var retention = RetentionPolicy()
    public var restore = Restore()

    public struct Exchange: Sendable, Equatable {
        /// How long one NNCP command of a visit may run before it is stopped.
        public var commandTimeout: Duration = .seconds(6 * 3600)
        /// Space left free on a stick, beyond what the packets take.
        public var reserveBytes: UInt64 = 1 << 20
    }

    public struct Status: Sendable, Equatable {
        /// `ferry status` warns when no stick has come for this long.
        public var visitWarnAfter: Duration = .seconds(7 * 86400)
        /// `ferry status` warns when a dataset's newest snapshot on backupsvr
        /// is older than this (simplesnap --check's idea).
        public var datasetWarnAfter: Duration = .seconds(7 * 86400)
        /// `ferry status` warns when a dataset's last restore drill that
        /// found it equal is older than this, or when it never had one.
        public var verifyWarnAfter: Duration = .seconds(90 * 86400)
    }

    public struct Receive: Sendable, Equatable {
        /// NNCP node name to the dataset prefix it may write.
        public var senders: [String: String] = [:]
        public var zfsReceiveOptions = ["-u", "-o", "readonly=on"]
    }

    public struct Rotation: Sendable, Equatable {
        /// A drive in the dock, or away, for longer than this is due to swap.
        public var rotateAfter: Duration = .seconds(14 * 86400)
        /// Warn when the stream store takes more than this share (in percent)
        /// of the disk that holds `state-dir`.
        public var storeWarnPercent = 50
        /// A drive whose last completed scrub is older than this is scrubbed on plug-in.
        public var scrubAfter: Duration = .seconds(30 * 86400)
        /// Warn when a drive's pool is fuller than this (in percent).
        public var driveWarnPercent = 80
    }

    public struct Send: Sendable, Equatable {
        public var backupsvr = "backupsvr"
        public var datasets: [String] = []
        /// The HOST in HOST/DATASET; nil means this node's NNCP name.
        public var host: String?
        /// simplesnap's --store, stripped from `ferry queue`'s argument.
        public var simplesnapStore: String?
        /// A stream larger than this crosses as several packets, none larger.
        public var chunkSize: UInt64 = 1 << 30
    }

    public struct Restore: Sendable, Equatable {
        /// Where a laptop receives restores; nil means `POOL/ferry-restore`,
        /// POOL being the pool of the dataset restored.
        public var into: DatasetName?

        public static let defaultName = "ferry-restore"

        /// The dataset under which a restore of `dataset` lands.
        public func root(for dataset: DatasetName) -> DatasetName {
            into ?? (try? DatasetName("\(dataset.components[0])/\(Self.defaultName)")) ?? dataset
        }
    }

    public init(path: String, role: Role) {
        self.path = path
        self.role = role
    }

    /// The config path to use: `--config`, else `$FERRY_CONFIG`, else the default.
    public static func resolvePath(option: String?, environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let option, !option.isEmpty { return option }
        if let fromEnvironment = environment["FERRY_CONFIG"], !fromEnvironment.isEmpty { return fromEnvironment }
        return defaultPath
    }

    /// Reads and checks the config file at `path`.
    public static func load(path: String) throws(ConfigError) -> FerryConfig {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            let reason = FileManager.default.fileExists(atPath: path) ? "cannot be read" : "does not exist"
            throw ConfigError(path: path, key: nil, problem: "\(reason); write one from /etc/ferry/ferry.toml.example, or pass --config")
        }
        guard data.count <= 1 << 20 else {
            throw ConfigError(path: path, key: nil, problem: "is larger than 1 MiB; this is not a ferry config")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(path: path, key: nil, problem: "is not UTF-8 text")
        }
        return try parse(text, path: path)
    }

    /// The first construct that toml++ (under TOMLKit) does not report but
    /// aborts the process on, by a failed assertion, with its line: a table
    /// header (`[x]`, `[[x]]`) whose name does not start as a key does (the
    /// fuzzer found `[~receive]`), and a `}` where an array expects a value
    /// (`role = [}`: parse_array hands it to parse_value, which asserts that
    /// it is not a value terminator). Both are invalid TOML. Compiled with
    /// NDEBUG the assertions would become `__builtin_assume`, undefined
    /// behaviour, so they are kept out before the parse instead.
    static func firstAbortingConstruct(_ text: String) -> (line: Int, problem: String)? {
        // The brackets open around the current position: `[` of an array,
        // `{` of an inline table. Table headers are only seen outside both.
        var open: [UInt8] = []
        var inMultilineString: String?
        // Lines are split on the byte LF, as toml++ splits them: split as
        // Characters, "\r\n" is one grapheme and no line would end there
        // (the fuzzer found a header after a CRLF line taken for a comment).
        for (index, line) in text.utf8.split(separator: 0x0A, omittingEmptySubsequences: false).enumerated() {
            let bytes = Array(line)
            // toml++ skips a byte order mark at the start of the text.
            var position = index == 0 && bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0
            if inMultilineString == nil, open.isEmpty {
                while position < bytes.count, bytes[position] == 32 || bytes[position] == 9 { position += 1 }
                if position < bytes.count, bytes[position] == UInt8(ascii: "[") {
                    var name = position + 1
                    if name < bytes.count, bytes[name] == UInt8(ascii: "[") { name += 1 }
                    while name < bytes.count, bytes[name] == 32 || bytes[name] == 9 { name += 1 }
                    let first = name < bytes.count ? bytes[name] : 0
                    let startsKey =
                        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(first) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(first)
                        || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) || first == UInt8(ascii: "_")
                        || first == UInt8(ascii: "-") || first == UInt8(ascii: "\"") || first == UInt8(ascii: "'")
                        || first == UInt8(ascii: "]")
                    guard startsKey else { return (index + 1, "a table name starts with a character a key cannot start with") }
                    continue
                }
            }
            while position < bytes.count {
                let byte = bytes[position]
                if let quote = inMultilineString {
                    if bytes[position...].starts(with: quote.utf8) {
                        inMultilineString = nil
                        position += 3
                    } else {
                        position += byte == UInt8(ascii: "\\") && quote == "\"\"\"" ? 2 : 1
                    }
                    continue
                }
                switch byte {
                case UInt8(ascii: "#"): position = bytes.count
                case UInt8(ascii: "["), UInt8(ascii: "{"): open.append(byte)
                case UInt8(ascii: "]"): _ = open.popLast()
                case UInt8(ascii: "}"):
                    guard open.last != UInt8(ascii: "[") else { return (index + 1, "an array holds a '}' where a value or ']' belongs") }
                    _ = open.popLast()
                case UInt8(ascii: "\""), UInt8(ascii: "'"):
                    let triple = String(repeating: Character(UnicodeScalar(byte)), count: 3)
                    if bytes[position...].starts(with: triple.utf8) {
                        inMultilineString = triple
                        position += 2
                    } else {
                        var end = position + 1
                        while end < bytes.count, bytes[end] != byte {
                            end += byte == UInt8(ascii: "\"") && bytes[end] == UInt8(ascii: "\\") ? 2 : 1
                        }
                        position = end
                    }
                default: break
                }
                position += 1
            }
        }
        return nil
    }

    /// Parses the TOML `text`; `path` names the file in errors.
    public static func parse(_ text: String, path: String) throws(ConfigError) -> FerryConfig {
        if let (line, problem) = firstAbortingConstruct(text) {
            throw ConfigError(path: path, key: nil, problem: "is not valid TOML at line \(line): \(problem)")
        }
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw ConfigError(path: path, key: nil, problem: "is not valid TOML at line \(error.source.begin.line): \(error.description)")
        } catch {
            throw ConfigError(path: path, key: nil, problem: "is not valid TOML: \(error)")
        }
        let reader = TableReader(table: table, path: path, prefix: "")
        try reader.allowOnly([
            "role", "name", "nncp-config", "nncp-user", "peer", "state-dir", "mount-root", "notify-command", "exchange", "status",
            "receive", "rotation", "send", "retention", "restore",
        ])

        guard let roleName = try reader.string("role") else {
            throw ConfigError(
                path: path, key: "role", problem: "is missing; set it to one of \(Role.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard let role = Role(rawValue: roleName) else {
            throw ConfigError(
                path: path, key: "role",
                problem: "is \"\(printable(roleName))\"; expected one of \(Role.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var config = FerryConfig(path: path, role: role)
        if let name = try reader.string("name") {
            guard NodeName.isValid(name) else {
                throw ConfigError(path: path, key: "name", problem: "is \"\(printable(name))\"; \(NodeName.rule)")
            }
            config.name = name
        }
        config.nncpConfig = try reader.absolutePath("nncp-config") ?? config.nncpConfig
        config.nncpUser = try reader.string("nncp-user") ?? config.nncpUser
        config.peer = try reader.string("peer")
        config.stateDir = try reader.absolutePath("state-dir") ?? config.stateDir
        config.mountRoot = try reader.absolutePath("mount-root") ?? config.mountRoot

        if let command = try reader.stringArray("notify-command") {
            guard command.isEmpty || command[0].hasPrefix("/") else {
                throw ConfigError(
                    path: path, key: "notify-command", problem: "must start with an absolute path; under systemd there is no PATH")
            }
            config.notifyCommand = command
        }
        if let exchange = try reader.table("exchange") {
            try exchange.allowOnly(["command-timeout", "reserve-mib"])
            config.exchange.commandTimeout = try exchange.duration("command-timeout") ?? config.exchange.commandTimeout
            if let reserve = try exchange.integer("reserve-mib") {
                guard let bytes = mebibytesInBytes(reserve) else {
                    throw ConfigError(path: path, key: "exchange.reserve-mib", problem: "is \(reserve), too large to count in bytes")
                }
                config.exchange.reserveBytes = bytes
            }
        }
        if let status = try reader.table("status") {
            try status.allowOnly(["visit-warn-after", "dataset-warn-after", "verify-warn-after"])
            config.status.visitWarnAfter = try status.duration("visit-warn-after") ?? config.status.visitWarnAfter
            config.status.datasetWarnAfter = try status.duration("dataset-warn-after") ?? config.status.datasetWarnAfter
            config.status.verifyWarnAfter = try status.duration("verify-warn-after") ?? config.status.verifyWarnAfter
        }
        if let receive = try reader.table("receive") {
            try receive.allowOnly(["senders", "zfs-receive-options"])
            config.receive.senders = try receive.stringTable("senders") ?? [:]
            config.receive.zfsReceiveOptions = try receive.stringArray("zfs-receive-options") ?? config.receive.zfsReceiveOptions
        }
        if let rotation = try reader.table("rotation") {
            try rotation.allowOnly(["rotate-after", "store-warn-percent", "scrub-after", "drive-warn-percent"])
            config.rotation.rotateAfter = try rotation.duration("rotate-after") ?? config.rotation.rotateAfter
            config.rotation.scrubAfter = try rotation.duration("scrub-after") ?? config.rotation.scrubAfter
            config.rotation.storeWarnPercent = try rotation.percent("store-warn-percent") ?? config.rotation.storeWarnPercent
            config.rotation.driveWarnPercent = try rotation.percent("drive-warn-percent") ?? config.rotation.driveWarnPercent
        }
        if let retention = try reader.table("retention") {
            try retention.allowOnly(["keep", "datasets"])
            config.retention.keep = try retention.schedule("keep")
            if let datasets = try retention.table("datasets") {
                for dataset in datasets.table.keys.sorted() {
                    config.retention.datasets[dataset] = try datasets.schedule(dataset)
                }
            }
        }
        if let send = try reader.table("send") {
            try send.allowOnly(["backupsvr", "datasets", "host", "simplesnap-store", "chunk-size"])
            config.send.backupsvr = try send.string("backupsvr") ?? config.send.backupsvr
            config.send.datasets = try send.stringArray("datasets") ?? []
            config.send.host = try send.string("host")
            config.send.simplesnapStore = try send.string("simplesnap-store")
            if let chunk = try send.size("chunk-size") {
                guard chunk >= 1 << 20 else {
                    throw ConfigError(path: path, key: "send.chunk-size", problem: "must be at least 1MiB, not \(chunk) bytes")
                }
                config.send.chunkSize = chunk
            }
        }
        if let restore = try reader.table("restore") {
            try restore.allowOnly(["into"])
            if let into = try restore.string("into") {
                do {
                    config.restore.into = try DatasetName(into)
                } catch {
                    throw ConfigError(path: path, key: "restore.into", problem: "is not a dataset name: \(error)")
                }
            }
        }

        if config.peer?.isEmpty == true { config.peer = nil }
        return config
    }

    /// Throws unless the NNCP config this file names exists: checked before
    /// any work, so that a typo shows as one line about this key.
    public func checkNNCPConfigExists() throws(ConfigError) {
        guard FileManager.default.fileExists(atPath: nncpConfig) else {
            throw ConfigError(
                path: path, key: "nncp-config", problem: "names \(nncpConfig), which does not exist; make one with nncp-cfgnew")
        }
    }

    /// The peer, or one line saying how this host gets one: a spooler or a
    /// backupsvr learns it by pairing across the gap.
    public func requirePeer() throws(ConfigError) -> String {
        guard let peer else {
            throw ConfigError(
                path: path, key: "peer",
                problem: "is not set: this \(role.rawValue) is not paired across the gap yet (ferry pair DEVNODE, with the stick)")
        }
        return peer
    }

    /// Throws unless this host has one of `roles`.
    public func require(_ roles: Role..., for command: String) throws(ConfigError) {
        guard roles.contains(role) else {
            throw ConfigError(
                path: path, key: "role",
                problem: "is \(role.rawValue), but `ferry \(command)` runs only on \(roles.map(\.rawValue).joined(separator: " or "))")
        }
    }
}

/// Parses "90s", "30m", "6h", "14d" or "2w"; nil for anything else, and
/// for a number of seconds too large to count (checked: a config never traps).
public func parseDuration(_ text: String) -> Duration? {
    guard let unit = text.last, let number = Int(text.dropLast()), number > 0 else { return nil }
    let unitSeconds: Int
    switch unit {
    case "s": unitSeconds = 1
    case "m": unitSeconds = 60
    case "h": unitSeconds = 3600
    case "d": unitSeconds = 86400
    case "w": unitSeconds = 7 * 86400
    default: return nil
    }
    let (seconds, overflow) = number.multipliedReportingOverflow(by: unitSeconds)
    return overflow ? nil : .seconds(seconds)
}

extension Duration {
    /// As a config would write it, for messages: whole days, hours, minutes
    /// or seconds, the largest unit that divides it ("14d", "36h", "90s").
    public var configText: String {
        let seconds = components.seconds
        for (unit, size) in [("d", Int64(86400)), ("h", 3600), ("m", 60)] where seconds != 0 && seconds % size == 0 {
            return "\(seconds / size)\(unit)"
        }
        return "\(seconds)s"
    }

    /// In whole seconds, to compare with the distance between two `Date`s.
    public var timeInterval: TimeInterval { TimeInterval(components.seconds) }
}

/// `mebibytes` in bytes; nil when that does not fit in 64 bits.
func mebibytesInBytes(_ mebibytes: Int) -> UInt64? {
    guard mebibytes >= 0, UInt64(mebibytes) <= UInt64.max >> 20 else { return nil }
    return UInt64(mebibytes) << 20
}

/// Parses "64MiB", "1GiB", "2TiB" or "512KiB" into bytes; nil for anything
/// else, and for a size that does not fit in 64 bits.
public func parseSize(_ text: String) -> UInt64? {
    let units: [(String, UInt64)] = [("KiB", 10), ("MiB", 20), ("GiB", 30), ("TiB", 40)]
    guard let (unit, shift) = units.first(where: { text.hasSuffix($0.0) }),
        let number = UInt64(text.dropLast(unit.count)), number > 0, number <= UInt64.max >> shift
    else { return nil }
    return number << shift
}

/// A config that is missing, malformed, or wrong, named by file and key.
public struct ConfigError: FerryError {
    public var path: String
    public var key: String?
    public var problem: String

    public var description: String {
        if let key { "\(path): key \"\(key)\" \(problem)" } else { "\(path) \(problem)" }
    }
}

/// Reads typed values out of one TOML table, naming the key in every error.
private struct TableReader {
    let table: TOMLTable
    let path: String
    let prefix: String

    private func name(_ key: String) -> String { prefix + key }

    private func fail(_ key: String, _ problem: String) -> ConfigError {
        ConfigError(path: path, key: name(key), problem: problem)
    }

    func allowOnly(_ keys: Set<String>) throws(ConfigError) {
        for key in table.keys.sorted() where !keys.contains(key) {
            throw fail(key, "is not a known setting; known here: \(keys.sorted().joined(separator: ", "))")
        }
    }

    func string(_ key: String) throws(ConfigError) -> String? {
        guard let value = table[key] else { return nil }
        guard let text = value.string else { throw fail(key, "must be a string, not \(value.type)") }
        return text
    }

    /// False for a number (not 0) and a unit that `parseDuration` refused:
    /// its seconds do not fit in an Int.
    static func isCountable(_ text: String) -> Bool {
        guard let unit = text.last, "smhdw".contains(unit), !text.dropLast().isEmpty else { return true }
        let digits = text.dropLast()
        return !(digits.allSatisfy { $0.isASCII && $0.isNumber } && digits.contains { $0 != "0" })
    }

    func duration(_ key: String) throws(ConfigError) -> Duration? {
        guard let text = try string(key) else { return nil }
        guard let duration = parseDuration(text) else {
            throw fail(
                key,
                Self.isCountable(text)
                    ? "is \"\(printable(text))\"; write a number and a unit, such as 90s, 30m, 6h or 14d"
                    : "is \"\(printable(text))\", too long to count; at most \(Int.max / 86400)d")
        }
        return duration
    }

    func size(_ key: String) throws(ConfigError) -> UInt64? {
        guard let text = try string(key) else { return nil }
        guard let size = parseSize(text) else {
            throw fail(key, "is \"\(printable(text))\"; write a whole number and a unit, such as 512KiB, 64MiB, 1GiB or 2TiB")
        }
        return size
    }

    func integer(_ key: String) throws(ConfigError) -> Int? {
        guard let value = table[key] else { return nil }
        guard let number = value.int, number >= 0 else { throw fail(key, "must be a whole number, 0 or more") }
        return number
    }

    func percent(_ key: String) throws(ConfigError) -> Int? {
        guard let percent = try integer(key) else { return nil }
        guard (1...100).contains(percent) else { throw fail(key, "must be between 1 and 100, not \(percent)") }
        return percent
    }

    func schedule(_ key: String) throws(ConfigError) -> RetentionSchedule? {
        guard let text = try string(key) else { return nil }
        do {
            return try RetentionSchedule.parse(text)
        } catch {
            throw fail(key, "is not a thinning schedule: \(error) (example: \"10,1d1w,1w1m,1m1y\")")
        }
    }

    func absolutePath(_ key: String) throws(ConfigError) -> String? {
        guard let text = try string(key) else { return nil }
        guard text.hasPrefix("/") else { throw fail(key, "must be an absolute path, not \"\(printable(text))\"") }
        return text
    }

    func stringArray(_ key: String) throws(ConfigError) -> [String]? {
        guard let value = table[key] else { return nil }
        guard let array = value.array else { throw fail(key, "must be an array of strings, not \(value.type)") }
        var strings: [String] = []
        for element in array {
            guard let text = element.string else { throw fail(key, "must hold only strings") }
            strings.append(text)
        }
        return strings
    }

    func stringTable(_ key: String) throws(ConfigError) -> [String: String]? {
        guard let inner = try table(key) else { return nil }
        var result: [String: String] = [:]
        for innerKey in inner.table.keys {
            guard let text = try inner.string(innerKey) else { continue }
            result[innerKey] = text
        }
        return result
    }

    func table(_ key: String) throws(ConfigError) -> TableReader? {
        guard let value = table[key] else { return nil }
        guard let inner = value.table else { throw fail(key, "must be a table, not \(value.type)") }
        return TableReader(table: inner, path: path, prefix: name(key) + ".")
    }
}
