import FerryCore
import FerryDemo
import Foundation
import Testing

extension ZFSWorld {
    /// What backupsvr queued for the laptop reaches it: a visit at
    /// backupsvr puts it on the stick, one at the spooler takes it off, and
    /// the spooler hands it to the laptop, whose toss runs `ferry state`.
    func stateTrip(_ stick: LoopDevice) async throws {
        for host in ["backupsvr", "spooler"] {
            let visit = try await bed.ferry(host, "handle", stick.devnode)
            try #require(visit.status == 0, "\(host): \(visit.error)")
        }
        try await bed.carryToLaptop()
    }

    /// What the laptop queued for backupsvr reaches it and is tossed there.
    func answerTrip(_ stick: LoopDevice) async throws {
        try await bed.carryToSpooler()
        for host in ["spooler", "backupsvr"] {
            let visit = try await bed.ferry(host, "handle", stick.devnode)
            try #require(visit.status == 0, "\(host): \(visit.error)")
        }
    }

    /// backupsvr's record of the state messages it queued, by laptop.
    func stateSeq() throws -> Int? {
        let path = "\(bed.directory)/backupsvr/state/laptop-states.json"
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: [String: Any]]
        return json?["laptop"]?["seq"] as? Int
    }

    /// Writes into the received dataset on the drive behind ferry's back
    /// (readonly off for the moment) and snapshots it: the drive's newest
    /// snapshot now holds a file the laptop never had.
    func tamper(_ name: String, with text: String) async throws {
        let dataset = "\(drive)/laptop/\(laptop)/root"
        try await bed.sh(Tool.zfs, "set", "readonly=off", dataset)
        try await bed.sh(Tool.zfs, "mount", dataset)
        try Data(text.utf8).write(to: URL(fileURLWithPath: try await mountpoint(dataset) + "/" + name))
        try await bed.sh(Tool.zfs, "snapshot", dataset + "@tampered")
        for attempt in 1...20 {
            let unmounted = try await bed.runner.run(Command(Tool.zfs, ["unmount", dataset]), input: nil)
            if unmounted.status.succeeded { break }
            try #require(attempt < 20, "cannot unmount \(dataset): \(unmounted.errorTail())")
            try await Task.sleep(for: .milliseconds(250))
        }
        try await bed.sh(Tool.zfs, "set", "readonly=on", dataset)
    }
}

@Suite(
    "The laptop's view and the restore drill, on zfs-fuse pools with real NNCP across three nodes", .tags(.integration, .zfs),
    .serialized, .enabled(if: Requirements.isRoot, Requirements.rootOnly), .zfsAnswers)
struct LaptopViewTests {
    @Test(
        "after three sends and trips the laptop's status names the drive and the newest snapshot of each dataset; unchanged state is not sent again; a state message from the spooler is refused"
    )
    func laptopView() async throws {
        try await TestBed.with(handler: .ferryReceive, stateBack: true) { bed in
            let world = try await ZFSWorld.make(bed, tag: "v")
            let stick = try await bed.enrolledStick()
            var newest = ""
            for round in 1...3 {
                newest = try await world.sendRound(round)
                _ = try await world.trip(stick)
            }
            // One state message where something changed: the first visit
            // (a drive, nothing received yet) and each of the three tosses.
            #expect(try world.stateSeq() == 4)
            try await world.stateTrip(stick)
            #expect(try world.stateSeq() == 4, "a visit and a toss that changed nothing queue nothing")

            let report = try await bed.status("laptop")
            let view = try #require(report.laptop)
            #expect(view.stateSeq == 4)
            #expect(view.datasets.map(\.dataset) == ["\(world.laptop)/root", "\(world.laptop)/root/home"])
            for dataset in view.datasets {
                #expect(dataset.sent == newest, "\(dataset)")
                #expect(dataset.reached == newest, "\(dataset)")
                #expect(dataset.reachedPools == [world.drive], "\(dataset)")
                #expect(dataset.drives.map(\.pool) == [world.drive], "\(dataset)")
                #expect(dataset.drives.map(\.snapshot) == [newest], "\(dataset)")
                #expect(dataset.drives.first?.place == .dock, "\(dataset)")
                #expect(dataset.drives.first?.since != nil, "\(dataset)")
            }
            #expect(report.warnings.contains("no offsite drive holds a snapshot of \(world.laptop)/root yet"), "\(report.warnings)")
            #expect(!report.warnings.contains { $0.contains("has reached a backup drive") }, "\(report.warnings)")
            let text = try await bed.ferry("laptop", "status")
            #expect(text.output.contains("drive \(world.drive): @\(newest), in the dock since"), "\(text.output)")

            // The spooler forges a newer state: NNCP says who sent it, and
            // the laptop takes state from backupsvr only.
            let forged = StateMessage(
                kind: .state, seq: 99, time: Date().rfc3339,
                state: LaptopState(host: "laptop", datasets: [], drives: [], incompleteStreams: [], refused: [], verified: []))
            try await bed.runner.check(NNCP.execState(config: bed.network.config("spooler"), node: "laptop"), input: forged.bytes)
            try await bed.carryToLaptop()
            let after = try await bed.status("laptop")
            #expect(after.laptop?.stateSeq == 4, "the forged state is not taken")
            #expect(after.laptop?.datasets == view.datasets)
            #expect(
                after.warnings.contains {
                    $0.contains("a state message from spooler was refused")
                        && $0.contains("it comes from spooler, and only backupsvr ([send].backupsvr) may send it")
                }, "\(after.warnings)")
            let rx = Spool(path: bed.network.spool("laptop")).receiveBacklog()
            #expect(rx.packets == 0, "the refused packet is dropped, not retried on every toss")
        }
    }

    @Test("ferry verify on an honest backup reports equality at all three hosts; a file changed on the drive behind ferry's back is named")
    func verify() async throws {
        try await TestBed.with(handler: .ferryReceive, stateBack: true) { bed in
            let world = try await ZFSWorld.make(bed, tag: "w")
            let stick = try await bed.enrolledStick()
            let s1 = try await world.sendRound(1)
            _ = try await world.trip(stick)
            let destination = "laptop/\(world.laptop)/root"

            let verify = try await bed.ferry("backupsvr", "verify", destination)
            try #require(verify.status == 0, "\(verify.error)")
            #expect(verify.output.contains("\(destination)@\(s1) on \(world.drive): "), "\(verify.output)")
            #expect(try await bed.status("backupsvr").verified?.first?.compared == nil, "the request is on its way")
            try await world.stateTrip(stick)
            let laptopResult = try #require(try await bed.status("laptop").laptop?.datasets.first?.verified)
            #expect(laptopResult.equal == true, "\(laptopResult)")
            #expect(laptopResult.laptopSnapshot == s1)
            try await world.answerTrip(stick)
            let honest = try #require(try await bed.status("backupsvr").verified?.first)
            #expect(honest.equal == true && honest.snapshot == s1 && honest.pool == world.drive, "\(honest)")
            #expect((honest.entries ?? 0) >= 2, "f and the home directory at least: \(honest)")
            #expect(!(try await bed.status("backupsvr").warnings.contains { $0.contains("\(destination) has not been verified") }))
            for host in ["backupsvr", "spooler"] { _ = try await bed.ferry(host, "handle", stick.devnode) }
            let spooler = try await bed.status("spooler")
            #expect(spooler.peer?.visit.verified?.first?.equal == true, "the visit record carries it to the spooler")

            try await world.tamper("f", with: "changed behind ferry's back\n")
            let again = try await bed.ferry("backupsvr", "verify", destination)
            try #require(again.status == 0, "\(again.error)")
            #expect(again.output.contains("\(destination)@tampered on \(world.drive)"), "the drive's newest snapshot: \(again.output)")
            try await world.stateTrip(stick)
            try await world.answerTrip(stick)
            let caught = try #require(try await bed.status("backupsvr").verified?.first)
            #expect(caught.equal == false && caught.snapshot == "tampered", "\(caught)")
            #expect(caught.laptopSnapshot == s1, "the laptop has no @tampered: it compares its kept mark snapshot")
            #expect(caught.differencesTotal == 1, "\(caught)")
            #expect(caught.differences?.map(\.path) == [Data("f".utf8)], "\(caught)")
            #expect(caught.differences?.first?.fields.contains("sha256") == true, "\(caught)")
            let text = try await bed.ferry("backupsvr", "status")
            #expect(text.output.contains("1 difference(s) with the laptop's @\(s1)"), "\(text.output)")
        }
    }
}
