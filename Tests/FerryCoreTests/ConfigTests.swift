import Foundation
import Testing

@testable import FerryCore

@Suite("The config file")
struct ConfigTests {
    let path = "/etc/ferry/ferry.toml"

    @Test("a full config from the brief parses into every field")
    func fullConfig() throws {
        let config = try FerryConfig.parse(
            """
            role = "backupsvr"
            nncp-config = "/etc/nncp.hjson"
            nncp-user = "nncp"
            peer = "spooler"
            state-dir = "/var/lib/ferry"
            mount-root = "/run/ferry"

            [receive]
            senders = { laptop = "laptop" }
            zfs-receive-options = ["-u"]

            [status]
            visit-warn-after = "3d"
            dataset-warn-after = "36h"

            [rotation]
            rotate-after = "7d"
            store-warn-percent = 30

            [send]
            backupsvr = "vault"
            datasets = ["tank/root", "tank/home"]
            host = "lap"
            simplesnap-store = "tank/simplesnap"
            """, path: path)
        #expect(config.status.visitWarnAfter == .seconds(3 * 86400))
        #expect(config.status.datasetWarnAfter == .seconds(36 * 3600))
        #expect(config.send.host == "lap")
        #expect(config.send.simplesnapStore == "tank/simplesnap")
        #expect(config.role == .backupsvr)
        #expect(config.peer == "spooler")
        #expect(config.receive.senders == ["laptop": "laptop"])
        #expect(config.receive.zfsReceiveOptions == ["-u"])
        #expect(config.rotation.rotateAfter == .seconds(7 * 86400))
        #expect(config.rotation.storeWarnPercent == 30)
        #expect(config.send.backupsvr == "vault")
        #expect(config.send.datasets == ["tank/root", "tank/home"])
    }

    @Test("defaults follow the brief")
    func defaults() throws {
        let config = try FerryConfig.parse("role = \"spooler\"\npeer = \"backupsvr\"\n", path: path)
        #expect(config.nncpConfig == "/etc/nncp.hjson")
        #expect(config.nncpUser == "nncp")
        #expect(config.stateDir == "/var/lib/ferry")
        #expect(config.mountRoot == "/run/ferry")
        #expect(config.receive.zfsReceiveOptions == ["-u", "-o", "readonly=on"])
        #expect(config.rotation.rotateAfter == .seconds(14 * 86400))
        #expect(config.rotation.storeWarnPercent == 50)
    }

    @Test("a spooler not paired yet has no peer, and a visit says how to get one")
    func noPeerYet() throws {
        let config = try FerryConfig.parse("role = \"spooler\"\nname = \"spooler\"\n", path: path)
        #expect(config.peer == nil)
        #expect(config.name == "spooler")
        #expect {
            _ = try config.requirePeer()
        } throws: { error in
            "\(error)"
                == "/etc/ferry/ferry.toml: key \"peer\" is not set: this spooler is not paired across the gap yet (ferry pair DEVNODE, with the stick)"
        }
    }

    @Test(
        "a duration or size too large to count is one error line naming the file and the key, never an overflow trap",
        arguments: [
            (
                "[rotation]\nrotate-after = \"999999999999999d\"\n",
                "key \"rotation.rotate-after\" is \"999999999999999d\", too long to count; at most 106751991167300d"
            ),
            ("[rotation]\nrotate-after = \"9223372036854775807h\"\n", "key \"rotation.rotate-after\""),
            ("[status]\nvisit-warn-after = \"999999999999999999m\"\n", "key \"status.visit-warn-after\""),
            ("[status]\ndataset-warn-after = \"99999999999999999999s\"\n", "key \"status.dataset-warn-after\""),
            ("[exchange]\ncommand-timeout = \"106751991167301d\"\n", "key \"exchange.command-timeout\""),
            ("[exchange]\nreserve-mib = 9223372036854775807\n", "key \"exchange.reserve-mib\" is 9223372036854775807, too large"),
        ])
    func overflowingNumbers(table: String, message: String) {
        #expect {
            _ = try FerryConfig.parse("role = \"backupsvr\"\npeer = \"s\"\n" + table, path: path)
        } throws: { error in
            let description = "\(error)"
            return error is ConfigError && description.hasPrefix("/etc/ferry/ferry.toml: ") && description.contains(message)
                && !description.contains("\n")
        }
    }

    @Test("durations are parsed once, at load, into Duration values; messages show them as a config writes them")
    func durationsParsedOnce() throws {
        let config = try FerryConfig.parse(
            """
            role = "backupsvr"
            peer = "s"
            [status]
            visit-warn-after = "90m"
            dataset-warn-after = "2w"
            [rotation]
            rotate-after = "36h"
            scrub-after = "45s"
            """, path: path)
        #expect(config.status.visitWarnAfter == .seconds(90 * 60))
        #expect(config.status.datasetWarnAfter == .seconds(14 * 86400))
        #expect(config.rotation.rotateAfter == .seconds(36 * 3600))
        #expect(config.rotation.scrubAfter == .seconds(45))
        #expect(
            [config.status.visitWarnAfter, config.status.datasetWarnAfter, config.rotation.rotateAfter, config.rotation.scrubAfter]
                .map(\.configText) == ["90m", "14d", "36h", "45s"])
        let now = try Date("2026-11-27T12:00:00Z", strategy: .iso8601)
        let dock = EnrolledDrive(pool: "a", guid: "1", enrolled: "2026-01-01T00:00:00Z", place: .dock, since: "2026-11-25T12:00:00Z")
        #expect(
            RotationPolicy(config.rotation).warnings(drives: [dock], store: PacketCount(), diskBytes: nil, now: now).first
                == "drive a has been in the dock since 2026-11-25T12:00:00Z, more than 36h: it is due to go offsite (ferry drive eject a)")
    }

    @Test("the largest duration that fits is taken, checked to the second")
    func largestDuration() {
        #expect(parseDuration("\(Int.max / 86400)d") == .seconds((Int.max / 86400) * 86400))
        #expect(parseDuration("\(Int.max / 86400 + 1)d") == nil)
        #expect(parseDuration("\(Int.max)s") == .seconds(Int.max))
    }

    @Test(
        "a bad config gives one line naming the file and the key",
        arguments: [
            ("role = \"spooler\"\npeer = \"b\"\nrol = \"x\"\n", "/etc/ferry/ferry.toml: key \"rol\" is not a known setting"),
            ("role = \"spooler\"\npeer = \"b\"\n[receive]\nsender = {}\n", "key \"receive.sender\" is not a known setting"),
            ("role = \"courier\"\n", "key \"role\" is \"courier\"; expected one of spooler, backupsvr, laptop"),
            ("peer = \"b\"\n", "key \"role\" is missing"),
            ("role = \"spooler\"\nname = \"../x\"\n", "key \"name\" is \"../x\"; a node name is"),
            ("role = 3\n", "key \"role\" must be a string, not int"),
            ("role = \"spooler\"\npeer = \"b\"\nstate-dir = \"var/lib\"\n", "key \"state-dir\" must be an absolute path"),
            ("role = \"laptop\"\n[send]\ndatasets = [1]\n", "key \"send.datasets\" must hold only strings"),
            ("role = \"spooler\"\npeer = \"b\"\nreceive = 1\n", "key \"receive\" must be a table"),
            ("role = \"spooler\"\npeer = [\n", "/etc/ferry/ferry.toml is not valid TOML at line"),
            (
                "role = \"backupsvr\"\npeer = \"s\"\n[rotation]\nstore-warn-percent = 0\n",
                "key \"rotation.store-warn-percent\" must be between 1 and 100"
            ),
            (
                "role = \"backupsvr\"\npeer = \"s\"\n[rotation]\nrotate-after = \"two weeks\"\n",
                "key \"rotation.rotate-after\" is \"two weeks\""
            ),
        ])
    func badConfig(text: String, message: String) {
        #expect {
            _ = try FerryConfig.parse(text, path: path)
        } throws: { error in
            let description = "\(error)"
            return error is ConfigError && description.contains(message) && !description.contains("\n")
        }
    }

    @Test(
        "a table name that no key starts with is one error line, not an abort inside toml++ (found by the fuzzer)",
        arguments: ["[~receive]", "[[~receive]]", "[ ~a]", "[]"], ["\n", "\r\n"])
    func badTableHeader(header: String, lineEnd: String) {
        #expect {
            _ = try FerryConfig.parse("role = \"spooler\"\(lineEnd)\(header)\(lineEnd)", path: path)
        } throws: { error in
            "\(error)".hasPrefix("/etc/ferry/ferry.toml is not valid TOML at line 2")
        }
    }

    @Test(
        "a '}' where an array expects a value is one error line, not an abort inside toml++ (found by the fuzzer)",
        arguments: [
            ("role = [}", 1), ("role = [1, }", 1), ("role = \"spooler\"\nx = [\n# a comment\n}", 4), ("x = {a = [}}", 1),
            ("x = [[}]]", 1), ("x = [ ,}", 1),
        ])
    func braceInArray(text: String, line: Int) {
        #expect {
            _ = try FerryConfig.parse(text + "\n", path: path)
        } throws: { error in
            "\(error)" == "/etc/ferry/ferry.toml is not valid TOML at line \(line): an array holds a '}' where a value or ']' belongs"
        }
    }

    @Test("a table name that no key starts with, right after a byte order mark, is one error line, not an abort")
    func badTableHeaderAfterBOM() {
        #expect {
            _ = try FerryConfig.parse("\u{FEFF}[~receive]\nrole = \"spooler\"\n", path: path)
        } throws: { error in
            "\(error)".hasPrefix("/etc/ferry/ferry.toml is not valid TOML at line 1: a table name starts")
        }
    }

    @Test("braces and brackets that TOML allows pass the check before the parse")
    func bracesThatAreFine() {
        let text = #"""
            a = [{b = 1}, {c = "}"}]
            d = '''
            [}
            '''
            e = """\""""
            [t]
            f = ['}', "\"}"]
            """#
        #expect(FerryConfig.firstAbortingConstruct(text) == nil)
    }

    @Test("brackets inside arrays that span lines and inside strings are not taken for table names")
    func bracketsInValues() throws {
        let config = try FerryConfig.parse(
            """
            role = "backupsvr"
            peer = "spooler"
            notify-command = [
              "/bin/echo", "[~x]",
            ]
            [receive]
            zfs-receive-options = ['-u', '[~y]']
            """, path: path)
        #expect(config.notifyCommand == ["/bin/echo", "[~x]"])
    }

    @Test("a missing config file is named, with what to do")
    func missingFile() {
        #expect {
            _ = try FerryConfig.load(path: "/nonexistent/ferry.toml")
        } throws: { error in
            "\(error)" == "/nonexistent/ferry.toml does not exist; write one from /etc/ferry/ferry.toml.example, or pass --config"
        }
    }

    @Test("--config wins over $FERRY_CONFIG, which wins over the default")
    func pathPrecedence() {
        #expect(FerryConfig.resolvePath(option: "/a.toml", environment: ["FERRY_CONFIG": "/b.toml"]) == "/a.toml")
        #expect(FerryConfig.resolvePath(option: nil, environment: ["FERRY_CONFIG": "/b.toml"]) == "/b.toml")
        #expect(FerryConfig.resolvePath(option: nil, environment: [:]) == "/etc/ferry/ferry.toml")
    }

    @Test("a command for another role is refused, naming the role key")
    func wrongRole() throws {
        let config = try FerryConfig.parse("role = \"laptop\"\n", path: path)
        #expect {
            try config.require(.spooler, .backupsvr, for: "handle")
        } throws: { error in
            "\(error)" == "/etc/ferry/ferry.toml: key \"role\" is laptop, but `ferry handle` runs only on spooler or backupsvr"
        }
    }
}

@Suite("The config's drive care: [retention] and the [rotation] additions")
struct DriveCareConfigTests {
    let head = "role = \"backupsvr\"\npeer = \"spooler\"\n"

    @Test("keep, per-dataset schedules, scrub-after and drive-warn-percent parse; no [retention] keeps everything")
    func parses() throws {
        let config = try FerryConfig.parse(
            head + """
                [rotation]
                scrub-after = "2w"
                drive-warn-percent = 90
                [retention]
                keep = "10,1d1w,1w1m,1m1y"
                [retention.datasets]
                "laptop/tank/scratch" = "3"
                """, path: "/f.toml")
        #expect(config.rotation.scrubAfter == .seconds(14 * 86400))
        #expect(config.rotation.driveWarnPercent == 90)
        #expect(config.retention.keep?.keepNewest == 10)
        #expect(config.retention.schedule(for: "laptop/tank/scratch")?.keepNewest == 3)
        let plain = try FerryConfig.parse(head, path: "/f.toml")
        #expect(plain.retention.isEmpty && plain.rotation.scrubAfter == .seconds(30 * 86400) && plain.rotation.driveWarnPercent == 80)
    }

    @Test(
        "a bad schedule or percentage is one line naming the file and the key",
        arguments: [
            (
                "[retention]\nkeep = \"1d\"",
                "/f.toml: key \"retention.keep\" is not a thinning schedule: \"1d\" is neither a count nor PERIODttl such as 1d1w (units s, min, h, d, w, m, y) (example: \"10,1d1w,1w1m,1m1y\")"
            ),
            (
                "[retention.datasets]\n\"laptop/x\" = 3",
                "/f.toml: key \"retention.datasets.laptop/x\" must be a string, not integer"
            ),
            ("[rotation]\ndrive-warn-percent = 0", "/f.toml: key \"rotation.drive-warn-percent\" must be between 1 and 100, not 0"),
            (
                "[rotation]\nscrub-after = \"soon\"",
                "/f.toml: key \"rotation.scrub-after\" is \"soon\"; write a number and a unit, such as 90s, 30m, 6h or 14d"
            ),
        ])
    func refuses(extra: String, message: String) {
        do {
            _ = try FerryConfig.parse(head + extra, path: "/f.toml")
            Issue.record("accepted \(extra)")
        } catch {
            #expect(error.description == message)
        }
    }
}
