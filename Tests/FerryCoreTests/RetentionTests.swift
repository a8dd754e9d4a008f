import Foundation
import Testing

@testable import FerryCore

@Suite("Retention: the thinning schedule and what it destroys")
struct RetentionTests {
    let now = try! Date("2026-12-01T12:00:00Z", strategy: .iso8601)

    /// One snapshot a day for `days` days, oldest first, named by how many
    /// days old it is.
    func daily(_ days: Int) -> [ThinCandidate] {
        (0..<days).reversed().map { age in
            ThinCandidate(name: "d\(age)", created: Int64(now.timeIntervalSince1970) - Int64(age) * 86400)
        }
    }

    @Test(
        "schedules parse into a count and PERIODttl rules",
        arguments: [
            ("10,1d1w,1w1m,1m1y", 10, [(86400, 604_800), (604_800, 2_592_000), (2_592_000, 31_557_600)]),
            ("3", 3, []),
            ("1h1d, 1min1h", 0, [(3600, 86400), (60, 3600)]),
        ])
    func parses(text: String, count: Int, rules: [(Int64, Int64)]) throws {
        let schedule = try RetentionSchedule.parse(text)
        #expect(schedule.keepNewest == count)
        #expect(schedule.rules == rules.map { RetentionSchedule.Rule(period: $0.0, ttl: $0.1) })
    }

    @Test(
        "a bad schedule names the part that is wrong",
        arguments: [
            ("", "\"\" is empty; leave the key out to keep everything"),
            ("10,1x1w", "\"1x1w\" is neither a count nor PERIODttl such as 1d1w (units s, min, h, d, w, m, y)"),
            ("1w1d", "\"1w1d\" needs a period above zero and no longer than its ttl"),
            ("-3", "\"-3\" is neither a count nor PERIODttl such as 1d1w (units s, min, h, d, w, m, y)"),
            ("1d", "\"1d\" is neither a count nor PERIODttl such as 1d1w (units s, min, h, d, w, m, y)"),
        ])
    func refuses(text: String, message: String) {
        #expect(throws: RetentionError.self) { try RetentionSchedule.parse(text) }
        do {
            _ = try RetentionSchedule.parse(text)
        } catch {
            #expect(error.description == message)
        }
    }

    @Test("90 days of daily snapshots thinned by 10,1d1w,1w1m,1m1y keep what the schedule says")
    func ninetyDays() throws {
        let schedule = try RetentionSchedule.parse("10,1d1w,1w1m,1m1y")
        let destroyed = Set(schedule.destroying(daily(90), now: now).map(\.name))
        let kept = daily(90).map(\.name).filter { !destroyed.contains($0) }
        // 0-9: the ten newest (0-7 also one a day for a week); 12, 19, 26
        // and 30: the oldest of each week-long block younger than a month;
        // 28, 58, 88 and 89: the oldest of each 30-day block in the year.
        #expect(
            kept == ["d89", "d88", "d58", "d30", "d28", "d26", "d19", "d12", "d9", "d8", "d7", "d6", "d5", "d4", "d3", "d2", "d1", "d0"])
    }

    @Test("the choice of each block stays put as the days go on")
    func stable() throws {
        let schedule = try RetentionSchedule.parse("1w1m")
        let today = Set(schedule.decide(daily(30), created: \.created, now: now).keep.map(\.created))
        let tomorrow = Set(schedule.decide(daily(30), created: \.created, now: now.addingTimeInterval(86400)).keep.map(\.created))
        #expect(tomorrow.isSubset(of: today))
    }

    @Test("the newest snapshot is always kept, even when the schedule lets everything go")
    func newest() throws {
        let schedule = try RetentionSchedule.parse("1d1w")
        let old = daily(60).filter { $0.name != "d0" && Int($0.name.dropFirst())! > 10 }
        let destroyed = schedule.destroying(old, now: now)
        #expect(destroyed.count == old.count - 1)
        #expect(!destroyed.contains { $0.name == "d11" })
    }

    @Test("held snapshots, clone origins, an admin's own snapshots and another drive's base survive")
    func protected() throws {
        let schedule = try RetentionSchedule.parse("2")
        var snapshots = daily(8)
        snapshots[0].held = true
        snapshots[1].origin = true
        snapshots[2].received = false
        snapshots[3].baseFor = ["B"]
        let destroyed = schedule.destroying(snapshots, now: now).map(\.name)
        #expect(destroyed == ["d3", "d2"])
    }

    @Test("an admin's own snapshot neither counts toward the newest to keep nor is destroyed")
    func adminSnapshotsDoNotCount() throws {
        let schedule = try RetentionSchedule.parse("2")
        var snapshots = daily(4)
        snapshots[3].received = false
        #expect(schedule.destroying(snapshots, now: now).map(\.name) == ["d3"])
    }

    @Test("a per-dataset schedule overrides the default one; no schedule keeps everything")
    func perDataset() throws {
        let policy = RetentionPolicy(keep: try .parse("10"), datasets: ["laptop/tank/scratch": try .parse("3")])
        #expect(policy.schedule(for: "laptop/tank/scratch")?.keepNewest == 3)
        #expect(policy.schedule(for: "laptop/tank/root")?.keepNewest == 10)
        #expect(RetentionPolicy().schedule(for: "laptop/tank/root") == nil)
    }
}
