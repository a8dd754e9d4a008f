import ArgumentParser
import FerryCore
import Foundation

/// The config path as an absolute path: exec handlers name it, and they run
/// in another working directory.
func absoluteConfigPath(_ option: String?) -> String {
    let path = FerryConfig.resolvePath(option: option)
    return path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
}

struct Init: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make this fresh host a ferry node: NNCP keys, spool, and the ferry config for ROLE; prints its card.",
        discussion:
            "Refuses to overwrite a ferry config. An existing NNCP configuration directory given with --nncp-config is used as it is.")

    @OptionGroup var options: GlobalOptions
    @Argument(help: "spooler, backupsvr or laptop.") var role: String
    @Option(help: "This node's name among the others (on a laptop, the HOST of its datasets on backupsvr).") var name: String
    @Option(help: "The NNCP configuration directory to make or use (default /etc/nncp).") var nncpConfig = "/etc/nncp"
    @Option(help: "The NNCP spool of a new NNCP configuration (default /var/spool/nncp).") var spool = "/var/spool/nncp"
    @Option(help: "ferry's state directory (default /var/lib/ferry).") var stateDir = "/var/lib/ferry"
    @Option(help: "Where ferry mounts media (default /run/ferry).") var mountRoot = "/run/ferry"
    @Option(help: "NNCP runs as this user; \"\" runs it as ferry's own user.") var nncpUser = "nncp"

    func validate() throws {
        guard Role(rawValue: role) != nil else {
            throw ValidationError("ROLE must be one of \(Role.allCases.map(\.rawValue).joined(separator: ", ")), not \(role)")
        }
    }

    func run() async throws {
        try await reportingErrors {
            options.bootstrapLogging()
            var setup = NodeInit(
                role: Role(rawValue: role)!, name: name, configPath: absoluteConfigPath(options.config), runner: SubprocessRunner())
            setup.nncpConfig = nncpConfig
            setup.spool = spool
            setup.stateDir = stateDir
            setup.mountRoot = mountRoot
            setup.nncpUser = nncpUser
            let outcome = try await setup.run()
            let context = FerryContext(config: outcome.config)
            let card = try Pairing(context: context, nncp: try await context.nncpConfig(), ferryExecutable: runningFerryExecutable())
                .ownCard()
            FileHandle.standardError.write(
                Data(
                    "ferry init: \(outcome.madeNNCPConfig ? "made the NNCP configuration directory \(nncpConfig) and" : "used the NNCP configuration directory \(nncpConfig);") wrote \(outcome.config.path). This node's card:\n"
                        .utf8))
            print(try card.text())
        }
    }
}

struct Card: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print this node's card, or a paired neighbour's; the text ends with its fingerprint.")

    @OptionGroup var options: GlobalOptions
    @Option(help: "A neighbour paired here.") var of: String?
    @Flag(help: "Print the JSON alone.") var json = false

    func run() async throws {
        try await reportingErrors {
            let context = try options.context()
            let card: NodeCard
            if let of {
                guard let kept = try CardStore(stateDir: context.config.stateDir).card(named: of) else {
                    throw PairingError(
                        "no card of \(printable(of, limit: 64)) is kept here; only neighbours paired with ferry pair have one")
                }
                card = kept
            } else {
                card = try Pairing(context: context, nncp: try await context.nncpConfig(), ferryExecutable: runningFerryExecutable())
                    .ownCard()
            }
            print(json ? try card.json() : try card.text())
        }
    }
}

struct Pair: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Pair with other nodes: `ferry pair add FILE|-` takes one card; `ferry pair DEVNODE` takes the cards on a stick.",
        discussion: """
            ferry pair DEVNODE shows the card of the stick's enroller (or the answer from across the gap) and its fingerprint. \
            With --accept naming that fingerprint, or after a yes on a terminal, it adds them and leaves this node's card on the stick. \
            Otherwise it changes nothing and exits 2.
            """)

    @OptionGroup var options: GlobalOptions
    @Argument(help: "`add`, or the stick's device node.") var target: String
    @Argument(help: "With add: the card file, or - for standard input.") var file: String?
    @Option(help: "The fingerprint (or the whole NNCP id) to accept, as ferry card prints it on the other host.") var accept: String?

    func validate() throws {
        if target == "add" {
            guard file != nil else { throw ValidationError("ferry pair add needs a card: FILE, or - for standard input") }
            guard accept == nil else {
                throw ValidationError("--accept is for ferry pair DEVNODE; a card file is checked by its signature")
            }
        } else if file != nil {
            throw ValidationError("ferry pair DEVNODE takes no second argument")
        }
    }

    func run() async throws {
        try await reportingErrors {
            let context = try options.context(absolutePath: true)
            let pairing = Pairing(context: context, nncp: try await context.nncpConfig(), ferryExecutable: runningFerryExecutable())
            if target == "add", let file {
                let bytes: [UInt8]
                if file == "-" {
                    bytes = Array(FileHandle.standardInput.readData(ofLength: NodeCard.sizeLimit + 1))
                } else {
                    guard let data = FileManager.default.contents(atPath: file) else {
                        throw PairingError("card \(file) cannot be read; nothing changed")
                    }
                    bytes = Array(data)
                }
                let (plan, changed) = try pairing.add(bytes, source: file == "-" ? "on standard input" : file)
                print(
                    changed
                        ? "paired with \(plan.card.name) (\(plan.card.role)), fingerprint \(plan.card.fingerprint)"
                        : "\(plan.card.name) is paired already; nothing changed")
                if changed { for line in plan.becomes { print("  \(line)") } }
                return
            }
            let interactive = isatty(0) == 1 && isatty(1) == 1
            let outcome = try await StickPairing(pairing: pairing).pair(
                devnode: target, accept: accept, show: { print($0) },
                confirm: interactive
                    ? {
                        print("Is this the fingerprint the other host shows? Add them? [y/N] ", terminator: "")
                        fflush(nil)
                        return ["y", "yes"].contains(readLine()?.lowercased().trimmingCharacters(in: .whitespaces) ?? "")
                    } : nil)
            print(outcome.added.isEmpty ? "nothing new to add" : "paired with \(outcome.added.joined(separator: ", "))")
            if outcome.leftOwnCard {
                print("left this node's card on the stick: take it back to \(outcome.vouching.name) and run ferry pair there")
            }
        }
    }
}

struct Doctor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check this host's whole setup; one line and a fix per problem. Exit 0 when all is well.")

    @OptionGroup var options: GlobalOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        try await reportingErrors {
            options.bootstrapLogging()
            let findings = await FerryCore.Doctor(configPath: absoluteConfigPath(options.config), runner: SubprocessRunner()).run()
            let problems = findings.filter { !$0.ok }
            if json {
                struct Report: Encodable {
                    var ok: Bool
                    var checks: [DoctorFinding]
                }
                try printJSON(Report(ok: problems.isEmpty, checks: findings))
            } else {
                for finding in problems { print(finding.line) }
                print(problems.isEmpty ? "ferry doctor: all \(findings.count) checks pass" : "ferry doctor: \(problems.count) problem(s)")
            }
            if !problems.isEmpty { throw ExitCode(ExitStatus.failed.rawValue) }
        }
    }
}
