import FerryCore
import Foundation
import Testing

func randomBytes(_ count: Int) throws -> [UInt8] {
    let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: "/dev/urandom"))
    defer { try? handle.close() }
    return Array(try handle.read(upToCount: count) ?? Data())
}

@Suite(
    "The sneakernet exchange on real NNCP and loop-device sticks", .tags(.integration), .serialized,
    .enabled(if: Requirements.isRoot, Requirements.rootOnly))
struct ExchangeTests {
    @Test("a stream crosses laptop, spooler, stick and backupsvr byte for byte, and the ACK releases the spooler's copy")
    func roundTrip() async throws {
        try await TestBed.with { bed in
            let stick = try await bed.enrolledStick()
            let payload = try randomBytes(3 << 20)
            try await bed.laptopSends(payload)
            #expect(try bed.queuedAtSpooler().count == 1)

            let atSpooler = try await bed.ferry("spooler", "handle", stick.devnode)
            #expect(atSpooler.status == 0, "\(atSpooler.error)")
            #expect(atSpooler.error.contains("safe to remove"))
            #expect(try bed.lastVisit("spooler").sent.packets == 1)
            #expect(try bed.queuedAtSpooler().count == 1, "the spooler keeps its copy until the ACK")

            let atBackupsvr = try await bed.ferry("backupsvr", "handle", stick.devnode)
            #expect(atBackupsvr.status == 0, "\(atBackupsvr.error)")
            let log = atBackupsvr.error
            let safe = try #require(log.range(of: "safe to remove"))
            let toss = try #require(log.range(of: "tossing: applying what arrived"))
            #expect(safe.lowerBound < toss.lowerBound, "the stick is released before the long toss")
            #expect(try bed.received() == [Data(payload)])
            let report = try bed.lastVisit("backupsvr")
            #expect(report.received.packets == 1)
            #expect(report.acks == 1)
            #expect(report.sent.packets == 1)
            let removed = try #require(log.range(of: "nncp-rm: exit status 0"))
            #expect(safe.lowerBound < removed.lowerBound, "the ACK's spool copy goes once the stick is out, not in the user's wait")
            #expect(try Spool(path: bed.network.spool("backupsvr")).queued(for: bed.nodeID("spooler")).isEmpty)
            #expect(report.pendingForPeer.packets == 0, "backupsvr keeps no copy of what it put on the stick")

            let back = try await bed.ferry("spooler", "handle", stick.devnode)
            #expect(back.status == 0, "\(back.error)")
            #expect(try bed.lastVisit("spooler").received.packets == 1)
            #expect(try bed.queuedAtSpooler().isEmpty, "the ACK deleted the kept copy")
            let stat = try await bed.sh("/usr/bin/nncp-stat", "-cfg", bed.network.config("spooler"))
            #expect(!stat.output.contains("Tx:") || stat.output.contains("Tx:        0 B,   0 pkts"))
        }
    }

    @Test("handling the same stick twice in a row sends nothing twice and processes nothing twice")
    func twice() async throws {
        try await TestBed.with { bed in
            let stick = try await bed.enrolledStick()
            let payload = try randomBytes(100_000)
            try await bed.laptopSends(payload)
            for _ in 0..<2 { #expect(try await bed.ferry("spooler", "handle", stick.devnode).status == 0) }
            let second = try bed.lastVisit("spooler")
            #expect(second.sent.packets == 0)
            #expect(second.alreadyOnStick == 1)
            for _ in 0..<2 { #expect(try await bed.ferry("backupsvr", "handle", stick.devnode).status == 0) }
            #expect(try bed.lastVisit("backupsvr").received.packets == 0)
            #expect(try bed.received() == [Data(payload)])
            #expect(try await bed.ferry("spooler", "handle", stick.devnode).status == 0)
            #expect(try bed.queuedAtSpooler().isEmpty)
        }
    }

    @Test("a lost ACK: the packet the spooler sends again is acknowledged again, within two trips, and its handler runs once")
    func lostAck() async throws {
        try await TestBed.with { bed in
            let lost = try await bed.enrolledStick("lost")
            let payload = try randomBytes(100_000)
            try await bed.laptopSends(payload)
            let packet = try #require(try bed.queuedAtSpooler().first?.name)
            #expect(try await bed.ferry("spooler", "handle", lost.devnode).status == 0)
            #expect(try await bed.ferry("backupsvr", "handle", lost.devnode).status == 0)
            #expect(try bed.received() == [Data(payload)])
            #expect(try bed.lastVisit("backupsvr").acks == 1)
            // The stick carrying that ACK never comes back; another one travels.
            let spare = try await bed.enrolledStick("spare")
            var trips = 0
            while try !bed.queuedAtSpooler().isEmpty, trips < 3 {
                trips += 1
                let atSpooler = try await bed.ferry("spooler", "handle", spare.devnode)
                #expect(atSpooler.status == 0, "\(atSpooler.error)")
                if try bed.queuedAtSpooler().isEmpty { break }
                let atBackupsvr = try await bed.ferry("backupsvr", "handle", spare.devnode)
                #expect(atBackupsvr.status == 0, "\(atBackupsvr.error)")
                if trips == 1 { #expect(try bed.lastVisit("backupsvr").acknowledgedAgain == [packet]) }
            }
            #expect(try bed.queuedAtSpooler().isEmpty, "still pending at the spooler after \(trips) trips")
            #expect(trips <= 2)
            #expect(try await bed.ferry("backupsvr", "handle", spare.devnode).status == 0)
            #expect(try bed.lastVisit("backupsvr").acknowledgedAgain == nil, "nothing more to acknowledge")
            #expect(try bed.received() == [Data(payload)], "the handler ran exactly once")
        }
    }

    @Test("a stick too small for the queue carries what fits, by niceness then age, and the rest follows")
    func tooSmall() async throws {
        try await TestBed.with { bed in
            let stick = try await bed.enrolledStick(megabytes: 20)
            var payloads: [[UInt8]] = []
            for _ in 0..<3 {
                payloads.append(try randomBytes(5 << 20))
                try await bed.laptopSends(payloads.last!, nice: "B")
            }
            let urgent = try randomBytes(1 << 20)
            try await bed.laptopSends(urgent, nice: "P")

            #expect(try await bed.ferry("spooler", "handle", stick.devnode).status == 0)
            let first = try bed.lastVisit("spooler")
            #expect(first.sent.packets == 3)
            #expect(first.stayedBehind.count == 1)
            #expect(first.stayedBehind.first?.nice == 224)
            #expect(try await bed.ferry("backupsvr", "handle", stick.devnode).status == 0)
            let firstTrip = try bed.received()
            #expect(firstTrip.contains(Data(urgent)), "the priority packet goes first")
            #expect(firstTrip.count == 3)

            #expect(try await bed.ferry("spooler", "handle", stick.devnode).status == 0)
            #expect(try bed.lastVisit("spooler").stayedBehind.isEmpty)
            #expect(try await bed.ferry("backupsvr", "handle", stick.devnode).status == 0)
            #expect(Set(try bed.received()) == Set((payloads + [urgent]).map { Data($0) }))
            #expect(try await bed.ferry("spooler", "handle", stick.devnode).status == 0)
            #expect(try bed.queuedAtSpooler().isEmpty)
        }
    }

    @Test("a packet larger than the whole stick is reported once, naming [send] chunk-size, and never blocks the rest")
    func tooBig() async throws {
        try await TestBed.with { bed in
            let stick = try await bed.enrolledStick(megabytes: 16)
            try await bed.laptopSends(try randomBytes(20 << 20))
            let small = try randomBytes(50_000)
            try await bed.laptopSends(small)
            let first = try await bed.ferry("spooler", "handle", stick.devnode)
            #expect(first.status == 0, "\(first.error)")
            #expect(first.error.contains("can never cross on it; on the laptop, a smaller [send] chunk-size splits such streams"))
            let second = try await bed.ferry("spooler", "handle", stick.devnode)
            #expect(second.status == 0)
            #expect(!second.error.contains("chunk-size"), "reported once")
            #expect(try bed.lastVisit("spooler").tooBig.count == 1)
            #expect(try await bed.ferry("backupsvr", "handle", stick.devnode).status == 0)
            #expect(try bed.received() == [Data(small)])
        }
    }

    @Test("a packet with a flipped byte is refused and reported; it arrives on a later trip")
    func flippedByte() async throws {
        try await TestBed.with { bed in
            let stick = try await bed.enrolledStick()
            let payload = try randomBytes(200_000)
            try await bed.laptopSends(payload)
            #expect(try await bed.ferry("spooler", "handle", stick.devnode).status == 0)
            let backupsvr = try bed.nodeID("backupsvr")
            let spooler = try bed.nodeID("spooler")
            try bed.tamper(stick) { root in
                let directory = "\(root)/nncp/\(backupsvr)/\(spooler)"
                let name = try #require(try FileManager.default.contentsOfDirectory(atPath: directory).first)
                var bytes = try Data(contentsOf: URL(fileURLWithPath: "\(directory)/\(name)"))
                bytes[5000] ^= 0x01
                try bytes.write(to: URL(fileURLWithPath: "\(directory)/\(name)"))
            }
            let refused = try await bed.ferry("backupsvr", "handle", stick.devnode)
            #expect(refused.status == 0, "\(refused.error)")
            #expect(refused.error.contains("NNCP refused packet"))
            #expect(try bed.lastVisit("backupsvr").rejected.count == 1)
            #expect(try bed.received().isEmpty)

            #expect(try await bed.ferry("spooler", "handle", stick.devnode).status == 0)
            #expect(try bed.lastVisit("spooler").sent.packets == 1, "the kept copy goes again")
            #expect(try await bed.ferry("backupsvr", "handle", stick.devnode).status == 0)
            #expect(try bed.received() == [Data(payload)])
        }
    }

    @Test("links in the stick's nncp tree are removed and never followed")
    func symlinks() async throws {
        try await TestBed.with { bed in
            let stick = try await bed.enrolledStick()
            let outside = bed.directory + "/outside"
            try "precious".write(toFile: outside, atomically: false, encoding: .utf8)
            let spooler = try bed.nodeID("spooler")
            let backupsvr = try bed.nodeID("backupsvr")
            let fakePacket = String(repeating: "A", count: 52)
            try bed.tamper(stick) { root in
                let manager = FileManager.default
                try manager.createDirectory(atPath: "\(root)/nncp/\(spooler)/\(backupsvr)", withIntermediateDirectories: true)
                try manager.createSymbolicLink(atPath: "\(root)/nncp/\(spooler)/\(backupsvr)/\(fakePacket)", withDestinationPath: outside)
                try manager.createSymbolicLink(
                    atPath: "\(root)/nncp/\(String(repeating: "B", count: 52))", withDestinationPath: bed.directory)
            }
            let handle = try await bed.ferry("spooler", "handle", stick.devnode)
            #expect(handle.status == 0, "\(handle.error)")
            #expect(try bed.lastVisit("spooler").removed.count == 2)
            #expect(try String(contentsOfFile: outside, encoding: .utf8) == "precious")
            try bed.tamper(stick) { root in
                #expect(!FileManager.default.fileExists(atPath: "\(root)/nncp/\(spooler)/\(backupsvr)/\(fakePacket)"))
            }
        }
    }

    @Test("an exec handler that fails leaves its packet queued, and a later toss applies it")
    func failingHandler() async throws {
        try await TestBed.with { bed in
            let stick = try await bed.enrolledStick()
            let payload = try randomBytes(100_000)
            try await bed.laptopSends(payload)
            #expect(try await bed.ferry("spooler", "handle", stick.devnode).status == 0)
            FileManager.default.createFile(atPath: bed.directory + "/handler-fails", contents: nil)
            let failed = try await bed.ferry("backupsvr", "handle", stick.devnode)
            #expect(failed.status == 0, "the stick was handled; the toss is separate")
            #expect(failed.error.contains("toss finished with errors"))
            #expect(try bed.received().isEmpty)
            try FileManager.default.removeItem(atPath: bed.directory + "/handler-fails")
            let retried = try await bed.ferry("backupsvr", "handle", stick.devnode)
            #expect(retried.status == 0)
            #expect(try bed.received() == [Data(payload)])
            #expect(try bed.lastVisit("backupsvr").lastToss?.succeeded == false, "the failed toss travels with the next visit")
        }
    }

    @Test("packets on the stick for another node are reported and left there")
    func foreignPackets() async throws {
        try await TestBed.with { bed in
            let stick = try await bed.enrolledStick()
            let laptop = try bed.nodeID("laptop")
            let spooler = try bed.nodeID("spooler")
            try bed.tamper(stick) { root in
                try FileManager.default.createDirectory(atPath: "\(root)/nncp/\(laptop)/\(spooler)", withIntermediateDirectories: true)
                try "x".write(
                    toFile: "\(root)/nncp/\(laptop)/\(spooler)/\(String(repeating: "C", count: 52))", atomically: false, encoding: .utf8)
            }
            let handle = try await bed.ferry("backupsvr", "handle", stick.devnode)
            #expect(handle.status == 0, "\(handle.error)")
            #expect(handle.error.contains("1 packet(s) on the stick are for laptop, not for this node"))
            #expect(try bed.lastVisit("backupsvr").foreign == ["laptop": 1])
        }
    }
}

@Suite(
    "NNCP commands run as nncp-user", .tags(.integration), .serialized,
    .enabled(if: Requirements.isRoot && Account(name: "nncp") != nil, "needs root and the nncp user from Debian's nncp package"))
struct NNCPUserTests {
    /// Hands the spooler's and backupsvr's NNCP files to the nncp user, as
    /// on a real host, and makes ferry run the NNCP commands as that user.
    func useNNCPUser(_ bed: TestBed) async throws {
        chmod(bed.directory, 0o755)
        try FileManager.default.createDirectory(atPath: bed.directory + "/received", withIntermediateDirectories: true)
        for path in [bed.directory + "/spooler", bed.directory + "/backupsvr", bed.directory + "/received"] {
            try await bed.sh("/usr/bin/chown", "-R", "nncp:nncp", path)
        }
        for host in ["spooler", "backupsvr"] {
            try bed.writeConfig(host: host, nncpUser: "nncp")
        }
    }

    @Test("a round trip with every NNCP command run as nncp through runuser, the stick's tree given to nncp")
    func roundTrip() async throws {
        try await TestBed.with { bed in
            let stick = try await bed.enrolledStick()
            let payload = try randomBytes(500_000)
            try await bed.laptopSends(payload)
            try await useNNCPUser(bed)
            for host in ["spooler", "backupsvr", "spooler"] {
                let run = try await bed.ferry(host, "handle", stick.devnode)
                #expect(run.status == 0, "\(host): \(run.error)")
                #expect(!run.error.contains("warning"), "\(host): \(run.error)")
            }
            #expect(try bed.received() == [Data(payload)])
            #expect(try bed.queuedAtSpooler().isEmpty)
        }
    }

    @Test("a spool owned by the wrong user is reported in one line that says how to fix it")
    func wrongOwner() async throws {
        try await TestBed.with { bed in
            let stick = try await bed.enrolledStick()
            try await useNNCPUser(bed)
            try await bed.sh("/usr/bin/chown", "root:root", bed.network.spool("spooler"))
            let run = try await bed.ferry("spooler", "handle", stick.devnode)
            #expect(run.status == 1)
            #expect(run.error.contains("is owned by uid 0, but NNCP commands run as nncp"))
            #expect(run.error.contains("fix it with: chown -R nncp: \(bed.network.spool("spooler"))"))
            #expect(!LinuxMounter().isMounted("\(bed.directory)/spooler/mnt/\(URL(fileURLWithPath: stick.devnode).lastPathComponent)"))
        }
    }

    @Test("a missing spool is made on the first run, owned by nncp")
    func missingSpool() async throws {
        try await TestBed.with { bed in
            let stick = try await bed.enrolledStick()
            try await useNNCPUser(bed)
            try FileManager.default.removeItem(atPath: bed.network.spool("spooler"))
            let run = try await bed.ferry("spooler", "handle", stick.devnode)
            #expect(run.status == 0, "\(run.error)")
            let owner = try FileManager.default.attributesOfItem(atPath: bed.network.spool("spooler"))[.ownerAccountName] as? String
            #expect(owner == "nncp")
        }
    }
}

/// A datagram socket standing in for systemd's notify socket.
final class NotifySocket {
    let path: String
    private let fd: Int32

    init(path: String) {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
    }

    deinit {
        close(fd)
        unlink(path)
    }

    /// Every message sent so far.
    func messages() -> [String] {
        var received: [String] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count <= 0 { return received }
            received.append(String(decoding: buffer[..<count], as: UTF8.self))
        }
    }
}

@Suite(
    "Telling people: notify-command and systemd STATUS", .tags(.integration), .serialized,
    .enabled(if: Requirements.isRoot, Requirements.rootOnly))
struct TellingTests {
    @Test("after safe to remove, notify-command runs with the event and the device; each step is a STATUS= line")
    func notify() async throws {
        try await TestBed.with { bed in
            let stick = try await bed.enrolledStick()
            let told = bed.directory + "/told"
            try bed.writeConfig(
                host: "spooler", extra: #"notify-command = ["/bin/sh", "-c", "echo \"$FERRY_EVENT $FERRY_DEVICE\" > \#(told)"]"#)
            let socket = NotifySocket(path: bed.directory + "/notify.sock")
            let run = try await FerryBinary.run(
                ["handle", stick.devnode, "--config", bed.configPath("spooler")], environment: ["NOTIFY_SOCKET": socket.path])
            #expect(run.status == 0, "\(run.error)")
            #expect(try String(contentsOfFile: told, encoding: .utf8) == "safe-to-remove \(stick.devnode)\n")
            let statuses = socket.messages()
            #expect(statuses.contains("STATUS=nothing to toss"), "an empty spool is not tossed: \(statuses)")
            #expect(statuses.last == "STATUS=safe to remove")
        }
    }
}
