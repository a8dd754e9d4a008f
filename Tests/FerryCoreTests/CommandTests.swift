import FerryDemo
import Testing

@testable import FerryCore

@Suite("External commands")
struct CommandTests {
    @Test("nncp-cfgdir dumps the config into the given directory")
    func cfgdirArgv() {
        let command = NNCP.cfgdirDump(config: "/etc/nncp.hjson", into: "/tmp/x/cfg")
        #expect(command.executable == "/usr/bin/nncp-cfgdir")
        #expect(command.arguments == ["-cfg", "/etc/nncp.hjson", "-dump", "/tmp/x/cfg"])
        #expect(command.timeout != nil)
    }

    @Test("ferry init's and the config directory's NNCP commands: nncp-cfgnew, nncp-cfgdir -load")
    func initArgv() {
        #expect(NNCP.cfgnew().description == "/usr/bin/nncp-cfgnew -nocomments")
        let load = NNCP.cfgdirLoad(directory: "/etc/nncp")
        #expect(load.description == "/usr/bin/nncp-cfgdir -load /etc/nncp")
        #expect(load.timeout != nil)
    }

    @Test("zpool reports a pool's GUID without headers")
    func zpoolGuidArgv() {
        #expect(Zpool.guid(pool: "backup-a").description == "/usr/sbin/zpool list -H -o guid backup-a")
    }

    @Test("an ACK for one packet names the node and the packet, and its list goes to descriptor 4")
    func ackPacketArgv() {
        let command = NNCP.ackPacket(config: "/etc/nncp.hjson", node: "spooler", packet: "P", timeout: .seconds(60))
        #expect(command.executable == "/bin/sh")
        #expect(
            command.arguments == [
                "-c", "exec \"$@\" 4>&1 1>&2", "nncp-ack", "/usr/bin/nncp-ack", "-cfg", "/etc/nncp.hjson", "-noprogress", "-node",
                "spooler", "-pkt", "P",
            ])
    }

    @Test("nncp-ack's log names the packets it confirmed; skipped ACKs and other lines are not among them")
    func acknowledgedFromLog() {
        let hash = String(repeating: "A", count: 52)
        let log = """
            2026-12-01T08:00:00Z ACK to spooler of \(hash) is sent
            2026-12-01T08:00:00Z ACKing spooler/\(String(repeating: "B", count: 52)): it is ACK, skipping
            2026-12-01T08:00:00Z ACK to spooler of not-a-hash is sent
            """
        #expect(AcknowledgedPackets.confirmed(inLog: Array(log.utf8)) == [hash])
    }

    @Test("a command for the NNCP user goes through runuser; an empty user means ferry's own")
    func asUser() {
        let command = NNCP.cfgnew().asUser("nncp")
        #expect(command.executable == "/usr/sbin/runuser")
        #expect(command.arguments == ["-u", "nncp", "--", "/usr/bin/nncp-cfgnew", "-nocomments"])
        #expect(NNCP.cfgnew().asUser("") == NNCP.cfgnew())
    }

    @Test("the state message goes to ferrystate at priority niceness")
    func stateAndVerifyArgv() {
        #expect(
            NNCP.execState(config: "/etc/nncp.hjson", node: "laptop").arguments == [
                "-cfg", "/etc/nncp.hjson", "-noprogress", "-nice", "P", "laptop", "ferrystate",
            ])
        #expect(NNCP.execState(config: "/etc/nncp.hjson", node: "laptop").executable == "/usr/bin/nncp-exec")
    }

    @Test("the demo's and the test bed's own commands, in FerryDemo")
    func demoArgv() {
        #expect(Zpool.probe().description == "/usr/sbin/zpool list -H")
        #expect(
            Zpool.create(pool: "p", device: "/dev/loop3", altroot: "/tmp/r").description
                == "/usr/sbin/zpool create -f -R /tmp/r p /dev/loop3")
        #expect(Zpool.destroy(pool: "p").description == "/usr/sbin/zpool destroy -f p")
        #expect(Zfs.create("p/root").description == "/usr/sbin/zfs create p/root")
        #expect(Zfs.mountpoint(of: "p/root").description == "/usr/sbin/zfs get -H -o value mountpoint p/root")
        #expect(LoopSetup.attach(image: "/tmp/a.img").description == "/usr/sbin/losetup --find --show /tmp/a.img")
        #expect(LoopSetup.detach(device: "/dev/loop3").description == "/usr/sbin/losetup --detach /dev/loop3")
        #expect(LoopSetup.makeExt4(image: "/tmp/a.img", label: "FERRY-1").description == "/usr/sbin/mkfs.ext4 -q -F -L FERRY-1 /tmp/a.img")
    }

    @Test("notify-command is told that the stick may go, and is not run when not set")
    func notifyArgv() {
        let command = Notify.safeToRemove(["/usr/local/bin/beep", "-f", "440"], device: "/dev/sdb1")
        #expect(command?.executable == "/usr/local/bin/beep")
        #expect(command?.arguments == ["-f", "440"])
        #expect(command?.environment == ["FERRY_EVENT": "safe-to-remove", "FERRY_DEVICE": "/dev/sdb1"])
        #expect(command?.timeout != nil)
        #expect(Notify.safeToRemove([], device: "/dev/sdb1") == nil)
    }

    @Test("a command prints as a shell would read it")
    func quoting() {
        #expect(Command("/bin/echo", ["a b", "it's", ""]).description == "/bin/echo 'a b' 'it'\\''s' ''")
    }

    @Test("the real runner reports exit status, output and input")
    func realRunner() async throws {
        let runner = SubprocessRunner()
        let ok = try await runner.run(Command("/bin/cat", []), input: Array("hello".utf8))
        #expect(ok.status == .exited(0))
        #expect(ok.output == "hello")
        let failed = try await runner.run(Command("/bin/sh", ["-c", "echo oops >&2; exit 3"]), input: nil)
        #expect(failed.status == .exited(3))
        #expect(failed.errorTail() == "oops")
        await #expect(throws: CommandError.self) {
            try await runner.check(Command("/bin/sh", ["-c", "exit 4"]))
        }
    }

    @Test("a command past its timeout is stopped and reported as timed out")
    func timeout() async throws {
        let clock = ContinuousClock()
        let start = clock.now
        let result = try await SubprocessRunner().run(Command("/bin/sleep", ["30"], timeout: .milliseconds(200)), input: nil)
        #expect(result.status == .timedOut)
        #expect(clock.now - start < .seconds(10))
    }

    @Test("a command that prints past the output limit is its own error, not a launch failure")
    func outputLimit() async {
        await #expect {
            _ = try await SubprocessRunner(outputLimit: 1000).run(Command("/bin/sh", ["-c", "head -c 5000 /dev/zero"]), input: nil)
        } throws: { error in
            (error as? CommandError)?.code == .outputLimitExceeded(limit: 1000)
        }
    }

    @Test("a log of a line a packet is read as it comes: the matching lines and the last few are kept, in order, past any output limit")
    func keptLines() async throws {
        // 40,000 lines of 200 bytes: 8 MB, past the 1 MB bound of this runner.
        let script = """
            i=0; pad=$(head -c 180 /dev/zero | tr '\\0' x)
            while [ $i -lt 40000 ]; do
              i=$((i+1))
              if [ $i = 7 ] || [ $i = 39999 ]; then echo "ERROR packet $i: hash mismatch"; else echo "packet $i $pad"; fi
            done >&2
            printf 'the last words' >&2; echo out; exit 5
            """
        let command = Command("/bin/sh", ["-c", script]).keeping(.matching(["ERROR"], tail: 3))
        let result = try await SubprocessRunner(outputLimit: 1 << 20).run(command, input: nil)
        #expect(result.status == .exited(5))
        #expect(result.output == "out\n")
        let lines = String(decoding: result.standardError, as: UTF8.self).split(separator: "\n").map { $0.prefix(16) }
        #expect(lines == ["ERROR packet 7: ", "ERROR packet 399", "packet 40000 xxx", "the last words"])
        #expect(result.errorTail(lines: 1) == "the last words")
        // The runner for the NNCP user keeps the choice.
        #expect(command.asUser("nncp").errorLines == .matching(["ERROR"], tail: 3))
    }

    @Test("matching lines past the bound are counted in a first line, and a line is cut at 4 KiB")
    func keptLinesBound() {
        var kept = KeptLines(words: ["is sent"], tail: 1, limit: 30)
        let log = "ACK of A is sent\nACK of B is sent\nACK of C is sent\n" + String(repeating: "y", count: 5000) + "\nend"
        Array(log.utf8).withUnsafeBytes { kept.take($0) }
        let lines = String(decoding: kept.finish(), as: UTF8.self).split(separator: "\n")
        #expect(lines == ["ferry: 2 more line(s) like these not kept", "ACK of A is sent", "end"])
        var long = KeptLines(words: ["y"], tail: 0, limit: 1 << 20)
        Array(log.utf8).withUnsafeBytes { long.take($0) }
        #expect(String(decoding: long.finish(), as: UTF8.self).split(separator: "\n").map(\.count) == [4096])
    }

    @Test("a program that does not exist is a launch failure that names it")
    func missingProgram() async {
        await #expect {
            _ = try await SubprocessRunner().run(Command("/nonexistent/tool", []), input: nil)
        } throws: { error in
            guard case .launchFailed = (error as? CommandError)?.code else { return false }
            return "\(error)".hasPrefix("could not run /nonexistent/tool")
        }
    }
}

@Suite("Base32 as NNCP writes it")
struct Base32Tests {
    @Test("round trips", arguments: [[], [0], [1, 2, 3, 4, 5], Array(0...255)] as [[UInt8]])
    func roundTrip(bytes: [UInt8]) {
        #expect(Base32.decode(Base32.encode(bytes)) == bytes)
    }

    @Test("a 52-character NNCP id decodes to 32 bytes")
    func nncpID() {
        #expect(Base32.decode("EIHDDAPKLCSXCMGV3AV4P76WJUZ6UJANLOP6GWSJ4RLFZWRIPM3A")?.count == 32)
    }

    @Test("characters outside the alphabet are refused")
    func invalid() {
        #expect(Base32.decode("abc") == nil)
        #expect(Base32.decode("AB1") == nil)
    }
}
