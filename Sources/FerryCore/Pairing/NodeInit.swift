import Foundation

/// `ferry init ROLE --name NAME`: makes a fresh host ready to pair. It makes
/// the NNCP configuration directory (unless one is named that exists), the
/// spool owned by `nncp-user`, and the ferry config for the role, which it
/// never overwrites.
public struct NodeInit: Sendable {
    public var role: Role
    public var name: String
    public var configPath: String
    public var nncpConfig = "/etc/nncp"
    public var spool = "/var/spool/nncp"
    public var stateDir = "/var/lib/ferry"
    public var mountRoot = "/run/ferry"
    public var nncpUser = "nncp"
    public var runner: any CommandRunner

    public init(role: Role, name: String, configPath: String, runner: any CommandRunner) {
        self.role = role
        self.name = name
        self.configPath = configPath
        self.runner = runner
    }

    /// What `ferry init` made, for its report.
    public struct Outcome: Sendable {
        public var madeNNCPConfig: Bool
        public var config: FerryConfig
    }

    public func run() async throws -> Outcome {
        guard NodeName.isValid(name) else { throw InitError("--name \"\(printable(name, limit: 40))\" will not do: \(NodeName.rule)") }
        for (option, path) in [
            ("--config", configPath), ("--nncp-config", nncpConfig), ("--spool", spool), ("--state-dir", stateDir),
            ("--mount-root", mountRoot),
        ]
        where !path.hasPrefix("/") {
            throw InitError("\(option) must be an absolute path, not \"\(printable(path))\"")
        }
        guard access(configPath, F_OK) != 0 else {
            throw InitError("\(configPath) exists already; ferry init writes a new config only, and nothing changed")
        }
        let account = nncpUser.isEmpty ? nil : Account(name: nncpUser)
        if !nncpUser.isEmpty, account == nil {
            throw InitError(
                "--nncp-user \(nncpUser) does not exist (the Debian package nncp makes the user nncp; \"\" runs NNCP as ferry's own user)")
        }
        let configText = Self.configText(
            role: role, name: name, nncpConfig: nncpConfig, nncpUser: nncpUser, stateDir: stateDir, mountRoot: mountRoot)
        do {
            _ = try FerryConfig.parse(configText, path: configPath)
        } catch {
            throw InitError("would write a config that does not parse: \(error)")
        }

        var isDirectory: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: nncpConfig, isDirectory: &isDirectory)
        if exists, !isDirectory.boolValue {
            throw InitError(
                "\(nncpConfig) is one HJSON file, which ferry does not edit; convert it with nncp-cfgdir -cfg \(nncpConfig) -dump \(NNCPConfigDirectory.suggestedDirectory(for: nncpConfig)), then pass --nncp-config \(NNCPConfigDirectory.suggestedDirectory(for: nncpConfig))"
            )
        }
        if !exists { try await makeNNCPConfig(group: account?.gid) }
        let nncp = try await NNCPConfigLoader(runner: runner).load(path: nncpConfig, configKey: "--nncp-config")

        try LocalFiles.createDirectory((nncp.spool as NSString).deletingLastPathComponent, mode: 0o755)
        try Spool(path: nncp.spool).prepare(owner: nncpUser)
        try writeConfig(configText)
        var config = try FerryConfig.parse(configText, path: configPath)
        config.name = name
        return Outcome(madeNNCPConfig: !exists, config: config)
    }

    /// The ferry config for the role: what pairing does not learn later.
    static func configText(role: Role, name: String, nncpConfig: String, nncpUser: String, stateDir: String, mountRoot: String) -> String {
        var lines = [
            "# Written by ferry init. ferry pair sets peer, [send] backupsvr and",
            "# [receive] senders as it pairs; config/ferry.toml.example has the rest.",
            "role = \(ConfigEdit.quoted(role.rawValue))",
            "name = \(ConfigEdit.quoted(name))",
            "nncp-config = \(ConfigEdit.quoted(nncpConfig))",
            "nncp-user = \(ConfigEdit.quoted(nncpUser))",
            "state-dir = \(ConfigEdit.quoted(stateDir))",
            "mount-root = \(ConfigEdit.quoted(mountRoot))",
        ]
        switch role {
        case .backupsvr:
            lines += ["", "[receive]", "senders = {}"]
        case .laptop:
            lines += ["", "[send]", "# The datasets `ferry send` backs up, with their children.", "datasets = []"]
        case .spooler:
            break
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Fresh keys from `nncp-cfgnew`, turned into a directory by
    /// `nncp-cfgdir -dump`, with this host's spool and log, made under a
    /// temporary name and renamed into place. The keys never leave private
    /// files: the directory is root's, readable by `nncp-user`'s group only
    /// (NNCP runs as that user and reads it).
    private func makeNNCPConfig(group: gid_t?) async throws {
        let parent = (nncpConfig as NSString).deletingLastPathComponent
        try LocalFiles.createDirectory(parent, mode: 0o755)
        var template = Array((NSTemporaryDirectory() + "/ferry-init.XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw InitError("could not make a private temporary directory") }
        let scratch = String(cString: made)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let fresh = try await runner.check(NNCP.cfgnew())
        let hjson = scratch + "/new.hjson"
        guard FileManager.default.createFile(atPath: hjson, contents: Data(fresh.standardOutput), attributes: [.posixPermissions: 0o600])
        else { throw InitError("could not write \(hjson)") }
        let building = nncpConfig + ".ferry-new"
        try? FileManager.default.removeItem(atPath: building)
        try await runner.check(NNCP.cfgdirDump(config: hjson, into: building))
        do {
            try Data((spool + "\n").utf8).write(to: URL(fileURLWithPath: building + "/spool"))
            try Data((spool + "/log\n").utf8).write(to: URL(fileURLWithPath: building + "/log"))
            try restrict(building, group: group ?? getegid())
            guard rename(building, nncpConfig) == 0 else {
                throw InitError("could not put \(nncpConfig) in place: \(String(cString: strerror(errno)))")
            }
        } catch {
            try? FileManager.default.removeItem(atPath: building)
            throw error
        }
    }

    /// Directories 0750 and files 0640, owned by this user and `group`.
    private func restrict(_ root: String, group: gid_t) throws {
        let enumerator = FileManager.default.enumerator(atPath: root)
        var paths = [root]
        while let relative = enumerator?.nextObject() as? String { paths.append(root + "/" + relative) }
        for path in paths {
            var info = stat()
            guard lstat(path, &info) == 0 else { continue }
            let mode: mode_t = FileType(mode: info.st_mode) == .directory ? 0o750 : 0o640
            guard chown(path, geteuid(), group) == 0, chmod(path, mode) == 0 else {
                throw InitError("could not restrict \(path): \(String(cString: strerror(errno)))")
            }
        }
    }

    private func writeConfig(_ text: String) throws {
        try LocalFiles.createDirectory((configPath as NSString).deletingLastPathComponent, mode: 0o755)
        let fd = open(configPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else { throw InitError("could not write \(configPath): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        try writeAll(fd, Array(text.utf8)[...])
        guard fsync(fd) == 0 else { throw InitError("could not write \(configPath): \(String(cString: strerror(errno)))") }
    }
}

public struct InitError: FerryError {
    public var problem: String

    public init(_ problem: String) {
        self.problem = problem
    }

    public var description: String { "ferry init: \(problem)" }
}
