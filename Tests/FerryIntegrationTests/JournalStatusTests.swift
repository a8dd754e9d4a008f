import FerryCore
import Foundation
import Testing

@Suite(
    "The journal on real sticks, and ferry status", .tags(.integration), .serialized,
    .enabled(if: Requirements.isRoot, Requirements.rootOnly))
struct JournalStatusTests {
    func status(_ bed: TestBed, _ host: String) async throws -> StatusReport {
        let run = try await bed.ferry(host, "status", "--json")
        #expect(run.status == 0, "\(run.error)")
        return try JSONDecoder().decode(StatusReport.self, from: Data(run.output.utf8))
    }

    @Test("after spooler, backupsvr and spooler again, the spooler's status shows backupsvr's verified visit")
    func roundTrip() async throws {
        try await TestBed.with { bed in
            let stick = try await bed.enrolledStick()
            let payload = try randomBytes(100_000)
            try await bed.laptopSends(payload)
            #expect(try await status(bed, "spooler").peer == nil)
            for host in ["spooler", "backupsvr", "spooler"] {
                let run = try await bed.ferry(host, "handle", stick.devnode)
                #expect(run.status == 0, "\(host): \(run.error)")
            }
            let spooler = try await status(bed, "spooler")
            let peer = try #require(spooler.peer)
            #expect(peer.node == "backupsvr")
            #expect(peer.visit.role == "backupsvr")
            #expect(peer.visit.received.packets == 1)
            #expect(peer.visit.acks == 1)
            #expect(peer.visit.drives == [])
            #expect(spooler.queue.isEmpty)
            #expect(spooler.sticks.map(\.label) == ["FERRY-1"])
            #expect(spooler.lastVisit?.received.packets == 1)

            let verified = try await bed.ferry("spooler", "journal", stick.devnode, "--verify")
            #expect(verified.status == 0, "\(verified.error)")
            #expect(verified.output.contains("every record verifies"))
            let json = try await bed.ferry("backupsvr", "journal", stick.devnode, "--json")
            let events = json.output.split(separator: "\n").map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
            #expect(events.map { $0["event"] as? String } == ["enroll", "visit", "visit", "visit"])
            #expect(events.allSatisfy { $0["trusted"] as? Bool == true })
            let text = try await bed.ferry("spooler", "status")
            #expect(text.output.contains("backupsvr, as its journal record seq 3 says"))
        }
    }

    @Test("a forged record on the stick is named by seq and never believed")
    func forged() async throws {
        try await TestBed.with { bed in
            let stick = try await bed.enrolledStick()
            for host in ["spooler", "backupsvr"] {
                #expect(try await bed.ferry(host, "handle", stick.devnode).status == 0)
            }
            try bed.tamper(stick) { root in
                let path = root + "/.ferry/journal"
                var lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
                #expect(lines[2].contains(#""role":"backupsvr""#))
                lines[2] = lines[2].replacingOccurrences(of: #""acks":0"#, with: #""acks":7"#)
                try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: false, encoding: .utf8)
            }
            let verify = try await bed.ferry("spooler", "journal", stick.devnode, "--verify")
            #expect(verify.status == 1)
            #expect(verify.error.contains("(seq 3): does not verify against backupsvr's signpub: edited or forged"), "\(verify.error)")
            let visit = try await bed.ferry("spooler", "handle", stick.devnode)
            #expect(visit.status == 0)
            #expect(visit.error.contains("journal: line 3 (seq 3)"))
            #expect(try await status(bed, "spooler").peer == nil, "a forged record is never shown as fact")
        }
    }

    @Test("a journal that is a symlink is refused, and the visit still carries the packets")
    func symlinked() async throws {
        try await TestBed.with { bed in
            let stick = try await bed.enrolledStick()
            try bed.tamper(stick) { root in
                try FileManager.default.removeItem(atPath: root + "/.ferry/journal")
                try FileManager.default.createSymbolicLink(atPath: root + "/.ferry/journal", withDestinationPath: "/etc/passwd")
            }
            let verify = try await bed.ferry("spooler", "journal", stick.devnode, "--verify")
            #expect(verify.status == 1)
            #expect(verify.error.contains("is a symbolic link"))
            let visit = try await bed.ferry("spooler", "handle", stick.devnode)
            #expect(visit.status == 0, "\(visit.error)")
            #expect(visit.error.contains("journal: this visit's record could not be written"))
        }
    }

    @Test("ferry killed with SIGKILL at random points during 200 appends: the journal verifies up to its last whole record")
    func crashSafety() async throws {
        try await TestBed.with { bed in
            let stick = try await bed.enrolledStick()
            var generator = SystemRandomNumberGenerator()
            for round in 0..<200 {
                let visit = try BackgroundFerry(bed, host: "spooler", ["handle", stick.devnode], name: "kill\(round)")
                try await Task.sleep(for: .milliseconds(Int.random(in: 0...120, using: &generator)))
                visit.kill(SIGKILL, wholeGroup: true)
                _ = try await visit.exit()
                let mount = "\(bed.directory)/spooler/mnt/\(URL(fileURLWithPath: stick.devnode).lastPathComponent)"
                if LinuxMounter().isMounted(mount) { try LinuxMounter().unmount(mount, lazy: true) }
            }
            #expect(try await bed.ferry("spooler", "handle", stick.devnode).status == 0)
            let journal = try await bed.ferry("spooler", "journal", stick.devnode, "--verify")
            #expect(journal.status == 0, "\(journal.output) \(journal.error)")
        }
    }
}
