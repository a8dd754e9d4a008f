import FerryCore
import FerryDemo
import Foundation
import Testing

/// Three fresh hosts in three directories of one test bed, set up with
/// ferry's own commands only: init, card, pair add, enroll, pair DEVNODE.
struct FreshHosts {
    let bed: TestBed
    var root: String { bed.directory + "/fresh" }

    func home(_ host: String) -> String { "\(root)/\(host)" }
    func config(_ host: String) -> String { home(host) + "/ferry.toml" }
    func nncp(_ host: String) -> String { home(host) + "/nncp" }
    func cardFile(_ host: String) -> String { "\(root)/\(host).card" }

    /// Runs ferry as `host`.
    func ferry(_ host: String, _ arguments: String...) async throws -> Run {
        try await FerryBinary.run(arguments + ["--config", config(host)])
    }

    /// `ferry init ROLE --name NAME` in `host`'s directory; its card is kept
    /// in ROOT/HOST.card, as an admin would carry it.
    @discardableResult
    func initialise(_ host: String, role: String? = nil, name: String? = nil) async throws -> Run {
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let run = try await ferry(
            host, "init", role ?? host, "--name", name ?? host, "--nncp-config", nncp(host), "--spool", home(host) + "/spool",
            "--state-dir", home(host) + "/state", "--mount-root", home(host) + "/mnt", "--nncp-user", "")
        try #require(run.status == 0, "ferry init \(host) failed: \(run.error)")
        try run.output.write(toFile: cardFile(host), atomically: true, encoding: .utf8)
        return run
    }

    func fingerprint(_ host: String) throws -> String {
        let text = try String(contentsOfFile: cardFile(host), encoding: .utf8)
        return String(try #require(text.split(separator: "\n").last { $0.hasPrefix("fingerprint: ") }).dropFirst("fingerprint: ".count))
    }

    func pairAdd(_ host: String, card file: String) async throws {
        let run = try await ferry(host, "pair", "add", file)
        try #require(run.status == 0, "ferry pair add at \(host) failed: \(run.error)")
    }

    /// The neighbours `host`'s NNCP configuration directory names.
    func neighbours(_ host: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: nncp(host) + "/neigh")) ?? []).sorted()
    }

    /// Everything a refusal must leave alone at `host`: its ferry config and
    /// its NNCP neighbours.
    func snapshot(_ host: String) throws -> String {
        var text = try String(contentsOfFile: config(host), encoding: .utf8)
        for name in neighbours(host) {
            let directory = nncp(host) + "/neigh/" + name
            for file in (FileManager.default.enumerator(atPath: directory)?.allObjects as? [String] ?? []).sorted() {
                text += "\n\(name)/\(file): " + ((try? String(contentsOfFile: directory + "/" + file, encoding: .utf8)) ?? "<dir>")
            }
        }
        return text
    }

    /// Laptop, spooler and backupsvr from nothing, paired on the LAN and
    /// across the gap by `stick`.
    func pairAll(stick: LoopDevice) async throws {
        for host in ["laptop", "spooler", "backupsvr"] { try await initialise(host) }
        try await pairAdd("spooler", card: cardFile("laptop"))
        try await pairAdd("laptop", card: cardFile("spooler"))
        let enrol = try await ferry("spooler", "enroll", stick.devnode)
        try #require(enrol.status == 0, "\(enrol.error)")

        let before = try snapshot("backupsvr")
        let look = try await ferry("backupsvr", "pair", stick.devnode)
        #expect(look.status == 2, "\(look.error)")
        #expect(look.output.contains("spooler (spooler) fingerprint: \(try fingerprint("spooler"))"))
        #expect(look.output.contains("introduces laptop (laptop) fingerprint: \(try fingerprint("laptop"))"))
        let wrong = try await ferry("backupsvr", "pair", stick.devnode, "--accept", "AAAA-BBBB-CCCC-DDDD")
        #expect(wrong.status == 1)
        #expect(wrong.error.contains("not AAAA-BBBB-CCCC-DDDD; nothing changed"))
        #expect(try snapshot("backupsvr") == before)

        let accepted = try await ferry("backupsvr", "pair", stick.devnode, "--accept", try fingerprint("spooler"))
        try #require(accepted.status == 0, "\(accepted.error)")
        let answer = try await ferry("spooler", "pair", stick.devnode, "--accept", try fingerprint("backupsvr"))
        try #require(answer.status == 0, "\(answer.error)")
        let handed = try await ferry("spooler", "card", "--of", "backupsvr")
        try #require(handed.status == 0, "\(handed.error)")
        try handed.output.write(toFile: root + "/handed-backupsvr.card", atomically: true, encoding: .utf8)
        try await pairAdd("laptop", card: root + "/handed-backupsvr.card")
    }

    /// Carries the laptop's queue to the spooler through a directory: the LAN.
    func carryToSpooler() async throws {
        let lan = root + "/lan"
        try FileManager.default.createDirectory(atPath: lan, withIntermediateDirectories: true)
        try await bed.runner.check(
            NNCP.xferSend(config: nncp("laptop"), directory: lan, node: "spooler", keep: false, timeout: .seconds(60)))
        try await bed.runner.check(NNCP.xferReceive(config: nncp("spooler"), directory: lan, timeout: .seconds(60)))
        try await bed.runner.check(NNCP.toss(config: nncp("spooler"), timeout: .seconds(60)))
    }
}

@Suite(
    "From three fresh hosts to the first backup, paired by ferry's own commands", .tags(.integration), .serialized,
    .enabled(if: Requirements.isRoot, Requirements.rootOnly))
struct PairingIntegrationTests {
    @Test(
        "init, card, pair add, enroll, pair DEVNODE --accept and drive enroll: one trip puts a laptop's snapshot on the drive", .tags(.zfs),
        .zfsAnswers)
    func firstBackup() async throws {
        try await TestBed.with { bed in
            let hosts = FreshHosts(bed: bed)
            let stick = try await bed.stick("pairing-stick")
            try await hosts.pairAll(stick: stick)

            let laptopPool = "pl\(getpid())"
            let drivePool = "pd\(getpid())"
            _ = try await bed.pool(laptopPool, ownAltroot: true)
            _ = try await bed.pool(drivePool, ownAltroot: true)
            try await bed.sh(Tool.zfs, "create", "\(laptopPool)/root")
            let enrolDrive = try await hosts.ferry("backupsvr", "drive", "enroll", drivePool)
            try #require(enrolDrive.status == 0, "\(enrolDrive.error)")

            let send = try await hosts.ferry("laptop", "send", "\(laptopPool)/root")
            try #require(send.status == 0, "\(send.error)")
            try await hosts.carryToSpooler()
            for host in ["spooler", "backupsvr"] {
                let visit = try await hosts.ferry(host, "handle", stick.devnode)
                try #require(visit.status == 0, "ferry handle at \(host): \(visit.error)")
            }
            let snapshots = try await ZFSInventory(runner: bed.runner).snapshots(of: "\(drivePool)/laptop/\(laptopPool)/root")?.map(\.name)
            #expect(
                snapshots?.count == 1 && snapshots?.first?.hasPrefix("ferry-") == true, "the drive holds \(String(describing: snapshots))")

            for host in ["laptop", "spooler", "backupsvr"] {
                let doctor = try await hosts.ferry(host, "doctor")
                #expect(doctor.status == 0, "ferry doctor at \(host): \(doctor.output) \(doctor.error)")
            }
        }
    }

    @Test("a laptop card swapped on the stick after enrolment, re-signed by another key, is refused at backupsvr, and nothing changes")
    func swappedCard() async throws {
        try await TestBed.with { bed in
            let hosts = FreshHosts(bed: bed)
            for host in ["laptop", "spooler", "backupsvr"] { try await hosts.initialise(host) }
            try await hosts.initialise("impostor", role: "laptop", name: "laptop")
            try await hosts.pairAdd("spooler", card: hosts.cardFile("laptop"))
            let stick = try await bed.stick("swapped-stick")
            let enrol = try await hosts.ferry("spooler", "enroll", stick.devnode)
            try #require(enrol.status == 0, "\(enrol.error)")
            let impostor = try await hosts.ferry("impostor", "card", "--json")
            try bed.tamper(stick) { mount in
                try impostor.output.write(toFile: mount + "/.ferry/cards/laptop.card", atomically: false, encoding: .utf8)
            }
            let before = try hosts.snapshot("backupsvr")
            let refused = try await hosts.ferry("backupsvr", "pair", stick.devnode, "--accept", try hosts.fingerprint("spooler"))
            #expect(refused.status == 1)
            #expect(refused.error.contains("the card of laptop is not the one spooler introduced"), "\(refused.error)")
            #expect(refused.error.split(separator: "\n").count == 1, "\(refused.error)")
            #expect(try hosts.snapshot("backupsvr") == before)
            #expect(hosts.neighbours("backupsvr") == ["self"])
        }
    }
}
