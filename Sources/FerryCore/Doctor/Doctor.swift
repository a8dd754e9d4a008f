import Foundation

/// One check of `ferry doctor`: passed, or the problem and its fix.
public struct DoctorFinding: Codable, Sendable, Equatable {
    public var check: String
    public var ok: Bool
    public var problem: String?
    public var fix: String?
    /// Why a check did not apply here (no systemd, for example).
    public var note: String?

    static func pass(_ check: String, note: String? = nil) -> DoctorFinding {
        DoctorFinding(check: check, ok: true, note: note)
    }

    static func fail(_ check: String, _ problem: String, fix: String) -> DoctorFinding {
        DoctorFinding(check: check, ok: false, problem: problem, fix: fix)
    }

    /// The one line `ferry doctor` prints for a problem.
    public var line: String { "\(check): \(problem ?? "") — fix: \(fix ?? "")" }
}

/// Where the doctor looks for what `make install` and Debian's packages put
/// in place (the rule, the units, zpool and zfs); tests point it at a
/// scratch tree.
public struct SystemLayout: Sendable {
    /// Prefixed to /etc, /usr and /run paths.
    public var root = ""
    public var systemdRunning: Bool

    public init(root: String = "", systemdRunning: Bool? = nil) {
        self.root = root
        self.systemdRunning = systemdRunning ?? FileManager.default.fileExists(atPath: root + "/run/systemd/system")
    }

    func anyExists(_ paths: [String]) -> Bool { paths.contains { FileManager.default.fileExists(atPath: root + $0) } }
}

/// `ferry doctor`: checks this host's whole setup, and names each problem
/// with the command or the line that fixes it. Reads only; changes nothing.
public struct Doctor: Sendable {
    public var configPath: String
    public var runner: any CommandRunner
    public var clock: any WallClock
    public var layout: SystemLayout

    public init(configPath: String, runner: any CommandRunner, clock: any WallClock = SystemClock(), layout: SystemLayout = SystemLayout())
    {
        self.configPath = configPath
        self.runner = runner
        self.clock = clock
        self.layout = layout
    }

    public func run() async -> [DoctorFinding] {
        let config: FerryConfig
        do {
            config = try FerryConfig.load(path: configPath)
        } catch {
            return [.fail("config", "\(error)", fix: "ferry init ROLE --name NAME makes one; or correct the key named")]
        }
        var findings: [DoctorFinding] = [.pass("config")]
        let nncp: NNCPConfig
        do {
            var loaded = try await NNCPConfigLoader(runner: runner).load(
                path: config.nncpConfig, configKey: "nncp-config in \(config.path)")
            loaded.configuredName = config.name
            nncp = loaded
        } catch {
            return findings + [
                .fail(
                    "nncp-config", "\(error)", fix: "ferry init makes an NNCP configuration directory; or set nncp-config in \(config.path)"
                )
            ]
        }
        findings.append(nncpConfigFinding(config))
        findings.append(keysFinding(config, nncp))
        findings.append(peerFinding(config, nncp))
        findings.append(execFinding(config, nncp))
        findings.append(spoolFinding(config, nncp))
        findings.append(unitsFinding())
        findings.append(await zfsFinding(config))
        findings.append(mediaFinding(config))
        findings.append(clockFinding(config))
        return findings
    }

    func nncpConfigFinding(_ config: FerryConfig) -> DoctorFinding {
        do {
            _ = try NNCPConfigDirectory(path: config.nncpConfig, configPath: config.path)
            return .pass("nncp-config")
        } catch {
            let directory = NNCPConfigDirectory.suggestedDirectory(for: config.nncpConfig)
            return .fail(
                "nncp-config", "\(config.nncpConfig) is one HJSON file, so ferry pair cannot add neighbours",
                fix: "nncp-cfgdir -cfg \(config.nncpConfig) -dump \(directory), then nncp-config = \"\(directory)\" in \(config.path)")
        }
    }

    func keysFinding(_ config: FerryConfig, _ nncp: NNCPConfig) -> DoctorFinding {
        guard let name = config.name else {
            return .fail("keys", "\(config.path) has no name for this node", fix: "add name = \"NAME\" at the top of \(config.path)")
        }
        do {
            let card = try NodeCard.make(name: name, role: config.role, nncp: nncp)
            try card.check(source: "of this node")
            return .pass("keys")
        } catch {
            return .fail("keys", "this node's card does not check: \(error)", fix: "ferry init on a fresh NNCP configuration directory")
        }
    }

    func peerFinding(_ config: FerryConfig, _ nncp: NNCPConfig) -> DoctorFinding {
        switch config.role {
        case .spooler, .backupsvr:
            guard let peer = config.peer else {
                return .fail(
                    "peer", "no peer is set: this \(config.role.rawValue) is not paired across the gap",
                    fix: "ferry pair DEVNODE --accept FINGERPRINT with the stick")
            }
            guard nncp.neighbours[peer] != nil else {
                return .fail(
                    "peer", "peer \(peer) is not a neighbour in \(nncp.path)",
                    fix: "ferry pair DEVNODE --accept FINGERPRINT, or correct peer in \(config.path)")
            }
        case .laptop:
            let backupsvr = config.send.backupsvr
            guard let node = nncp.neighbours[backupsvr] else {
                return .fail(
                    "peer", "[send].backupsvr \(backupsvr) is not a neighbour in \(nncp.path)",
                    fix: "ferry card --of backupsvr > backupsvr.card at the spooler, then ferry pair add backupsvr.card here")
            }
            guard !node.via.isEmpty else {
                return .fail(
                    "peer", "\(backupsvr) has no via: packets for it would wait for a direct call that never comes",
                    fix: "write the spooler's name into \(nncp.path)/neigh/\(backupsvr)/via")
            }
            for hop in node.via where nncp.neighbours[hop] == nil {
                return .fail(
                    "peer", "\(backupsvr) goes via \(hop), which is not a neighbour",
                    fix: "ferry pair add the spooler's card (ferry card at the spooler)")
            }
        }
        return .pass("peer")
    }

    func execFinding(_ config: FerryConfig, _ nncp: NNCPConfig) -> DoctorFinding {
        let expectConfig = config.path == FerryConfig.defaultPath ? nil : config.path
        func problem(_ argv: [String]?, _ subcommand: String) -> String? {
            guard let argv, let binary = argv.first else { return "is missing" }
            guard binary.hasPrefix("/"), FileManager.default.isExecutableFile(atPath: binary) else {
                return "runs \(binary), which is not an executable absolute path"
            }
            guard argv.count > 1, argv[1] == subcommand else { return "does not run ferry \(subcommand)" }
            if let expectConfig, !(argv.count >= 4 && argv[2] == "--config" && argv[3] == expectConfig) {
                return "lacks --config \(expectConfig), and nncp-toss passes handlers no environment"
            }
            return nil
        }
        func handlerLine(_ subcommand: String) -> String {
            ([runningFerryExecutable(), subcommand] + (expectConfig.map { ["--config", $0] } ?? [])).joined(separator: " ")
        }
        switch config.role {
        case .backupsvr:
            for sender in config.receive.senders.keys.sorted() {
                guard let node = nncp.neighbours[sender] else {
                    return .fail(
                        "exec", "[receive].senders names \(sender), which is not a neighbour",
                        fix: "ferry pair DEVNODE with a stick that introduces it, or remove it from [receive].senders")
                }
                for (handle, subcommand) in [("zfsreceive", "receive"), ("ferrystate", "state")] {
                    if let problem = problem(node.exec[handle], subcommand) {
                        return .fail(
                            "exec", "\(sender)'s exec handler \(handle) \(problem)",
                            fix: "write \(nncp.path)/neigh/\(sender)/exec/\(handle) with one word a line: \(handlerLine(subcommand))")
                    }
                }
            }
            for node in nncp.neighbours.values.sorted(by: { $0.name < $1.name })
            where node.exec["zfsreceive"] != nil && config.receive.senders[node.name] == nil {
                return .fail(
                    "exec", "\(node.name) may run zfsreceive, but [receive].senders does not name it, so its streams are refused",
                    fix: "add \(node.name) = \"\(node.name)\" to [receive] senders in \(config.path)")
            }
        case .laptop:
            if let node = nncp.neighbours[config.send.backupsvr] {
                for (handle, subcommand) in [("zfsrestore", "receive"), ("ferrystate", "state")] {
                    if let problem = problem(node.exec[handle], subcommand) {
                        return .fail(
                            "exec", "\(node.name)'s exec handler \(handle) \(problem)",
                            fix: "write \(nncp.path)/neigh/\(node.name)/exec/\(handle) with one word a line: \(handlerLine(subcommand))")
                    }
                }
            }
        case .spooler:
            break
        }
        return .pass("exec")
    }

    func spoolFinding(_ config: FerryConfig, _ nncp: NNCPConfig) -> DoctorFinding {
        var info = stat()
        guard stat(nncp.spool, &info) == 0, FileType(mode: info.st_mode) == .directory else {
            return .fail(
                "spool", "\(nncp.spool) is missing",
                fix: "install -d -m 0700 -o \(config.nncpUser.isEmpty ? "root" : config.nncpUser) \(nncp.spool)")
        }
        let user = config.nncpUser
        let uid = user.isEmpty ? geteuid() : Account(name: user)?.uid
        guard let uid else {
            return .fail(
                "spool", "nncp-user \(user) does not exist",
                fix: "apt-get install nncp (it makes the user nncp), or set nncp-user in \(config.path)")
        }
        guard info.st_uid == uid else {
            return .fail(
                "spool", "\(nncp.spool) is owned by uid \(info.st_uid), but NNCP runs as \(user.isEmpty ? "uid \(uid)" : user)",
                fix: "chown -R \(user.isEmpty ? "\(uid)" : user): \(nncp.spool)")
        }
        guard info.st_mode & 0o022 == 0 else {
            return .fail(
                "spool", "\(nncp.spool) is writable by others (mode \(String(info.st_mode & 0o777, radix: 8)))",
                fix: "chmod go-w \(nncp.spool)")
        }
        return .pass("spool")
    }

    func unitsFinding() -> DoctorFinding {
        guard layout.systemdRunning else { return .pass("units", note: "skipped: systemd is not running here") }
        let installed: [(String, [String])] = [
            (
                "the udev rule 90-ferry.rules",
                ["/etc/udev/rules.d/90-ferry.rules", "/usr/lib/udev/rules.d/90-ferry.rules", "/lib/udev/rules.d/90-ferry.rules"]
            ),
            (
                "ferry@.service",
                ["/etc/systemd/system/ferry@.service", "/usr/lib/systemd/system/ferry@.service", "/lib/systemd/system/ferry@.service"]
            ),
            (
                "ferry-toss.service",
                [
                    "/etc/systemd/system/ferry-toss.service", "/usr/lib/systemd/system/ferry-toss.service",
                    "/lib/systemd/system/ferry-toss.service",
                ]
            ),
        ]
        for (what, paths) in installed where !layout.anyExists(paths) {
            return .fail(
                "units", "\(what) is not installed",
                fix: "make install (as root), then systemctl daemon-reload and udevadm control --reload")
        }
        return .pass("units")
    }

    func zfsFinding(_ config: FerryConfig) async -> DoctorFinding {
        guard config.role != .spooler else { return .pass("zfs", note: "the spooler needs no ZFS") }
        for tool in [Tool.zpool, Tool.zfs] where !FileManager.default.isExecutableFile(atPath: layout.root + tool) {
            return .fail("zfs", "\(tool) is missing", fix: "apt-get install zfsutils-linux (or zfs-fuse)")
        }
        let answer = try? await runner.run(Zpool.listImported(), input: nil)
        guard answer?.status.succeeded == true else {
            return .fail(
                "zfs", "zpool list fails: \(answer?.errorTail() ?? "it could not be run")", fix: "modprobe zfs (or start zfs-fuse)")
        }
        return .pass("zfs")
    }

    func mediaFinding(_ config: FerryConfig) -> DoctorFinding {
        if config.role == .backupsvr {
            let drives = (try? DriveRegistry(stateDir: config.stateDir).load()) ?? []
            guard drives.contains(where: { !$0.isRetired }) else {
                return .fail("media", "no backup drive is enrolled", fix: "ferry drive enroll POOL (or DEVNODE) with the drive in the dock")
            }
        }
        let sticks: [StickSeen]
        do {
            sticks = try KnownSticks(stateDir: config.stateDir).load()
        } catch {
            return .fail("media", "\(error)", fix: "look at the file moved aside; ferry writes a fresh one at the next visit")
        }
        if config.role != .laptop, sticks.isEmpty {
            return .fail(
                "media", "no enrolled stick has visited this host yet",
                fix: "ferry enroll DEVNODE at the spooler, then plug the stick in here")
        }
        return .pass("media")
    }

    /// Journal records carry each host's own time, and `ferry status`
    /// compares them: a clock behind what this host already recorded, or
    /// behind the peer's last record, misleads both.
    func clockFinding(_ config: FerryConfig) -> DoctorFinding {
        let now = clock.now()
        var recorded: [(String, String)] = []
        // A damaged file is the media finding's to report; here it only
        // has no time to compare.
        if let visit = try? VisitReport.last(stateDir: config.stateDir) { recorded.append(("this host's last visit", visit.finished)) }
        if let peer = try? StateFile<PeerState>(VisitJournal.peerStateFile, stateDir: config.stateDir).load() {
            recorded.append(("\(peer.node)'s last journal record", peer.time))
        }
        for (what, time) in recorded {
            if let date = StatusReader.date(time), date.timeIntervalSince(now) > 300 {
                return .fail(
                    "clock", "the clock says \(now.rfc3339), before \(what) at \(time)",
                    fix: "set the clock (date -s, or timedatectl set-time) to UTC now")
            }
        }
        return .pass("clock")
    }
}
