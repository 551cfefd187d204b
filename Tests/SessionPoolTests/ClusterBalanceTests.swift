import Foundation
import Tenancy
import Testing

@testable import SessionPool

/// The spread of sessions over a cluster's nodes: fair shares, who takes handed-over sessions, and the move budget.
@Suite struct ClusterBalanceTests {
    func tenants(_ count: Int, _ prefix: String = "t") throws -> [TenantName] {
        try (0..<count).map { try TenantName("\(prefix)\($0)") }
    }

    @Test func aNewNodeGetsAFairShareAndOnlyNodesAboveItGiveSessionsAway() {
        let balance = ClusterBalance(loads: ["a": 10, "b": 10, "c": 10, "d": 0], homeless: 0)
        #expect(balance.fairShare == 8)
        #expect(["a", "b", "c"].map(balance.excess(of:)) == [2, 2, 2])
        #expect(balance.excess(of: "d") == 0)
        #expect(ClusterBalance(loads: ["a": 5, "b": 5], homeless: 0).excess(of: "a") == 0, "an even cluster moves nothing")
        #expect(ClusterBalance(loads: [:], homeless: 3).fairShare == 0)
    }

    @Test func aFewSessionsStillGiveANewNodeAShare() throws {
        // 6 on three nodes and a fourth: nobody is above 2 (the share rounded up), but the new node is below 1.
        let few = ClusterBalance(loads: ["a": 2, "b": 2, "c": 2, "d": 0], homeless: 0)
        #expect(["a", "b", "c", "d"].map(few.excess(of:)).reduce(0, +) == 1, "exactly one session moves")
        // The moved session goes to the empty node, not back to the giver (now one below the share too).
        let after = ClusterBalance(loads: ["a": 1, "b": 2, "c": 2, "d": 0], homeless: 1)
        #expect(after.assign([try TenantName("moved")]) == [try TenantName("moved"): "d"])
        // 30 on three nodes and a fourth: 2 each above 8 first, then one more so the new node reaches 7.
        let many = ClusterBalance(loads: ["a": 10, "b": 10, "c": 10, "d": 0], homeless: 0)
        #expect(["a", "b", "c"].map(many.excess(of:)) == [2, 2, 2])
        let next = ClusterBalance(loads: ["a": 8, "b": 8, "c": 8, "d": 6], homeless: 0)
        #expect(["a", "b", "c", "d"].map(next.excess(of:)).reduce(0, +) == 1)
        // Sessions already handed over fill the gap: nothing more moves.
        #expect(["a", "b", "c"].map(ClusterBalance(loads: ["a": 2, "b": 2, "c": 1, "d": 0], homeless: 1).excess(of:)).reduce(0, +) == 0)
        #expect(ClusterBalance(loads: ["a": 2, "b": 1, "c": 1, "d": 2], homeless: 0).excess(of: "a") == 0, "settled: nobody below 1")
    }

    @Test func everyNodeAssignsHandedOverSessionsTheSameWayAndNoneBeyondItsShare() throws {
        // A stopped node's 10 sessions over three nodes that run 4, 6 and 0.
        let balance = ClusterBalance(loads: ["a": 4, "b": 6, "c": 0], homeless: 10)
        let homeless = try tenants(10)
        let assignment = balance.assign(homeless)
        #expect(assignment.count == 10, "each finds a node")
        var loads = balance.loads
        for node in assignment.values { loads[node, default: 0] += 1 }
        #expect(loads.values.allSatisfy { $0 <= balance.fairShare }, "\(loads), fair share \(balance.fairShare)")
        #expect(balance.assign(homeless.reversed()) == assignment, "the same answer whatever order the rows came in")
        #expect(Set(assignment.values).count > 1, "spread, not all to one node")
    }

    @Test func aNodeIsNotGivenBackWhatItJustHandedOverNorAnythingWhenFull() throws {
        let homeless = try tenants(4)
        let balance = ClusterBalance(loads: ["a": 0, "b": 4], homeless: 4)
        let excluding = Dictionary(uniqueKeysWithValues: homeless.map { ($0, Set(["a"])) })
        #expect(balance.assign(homeless, excluding: excluding).isEmpty, "a is excluded and b is at its share (4)")
        #expect(ClusterBalance(loads: ["a": 2, "b": 2], homeless: 0).assign(homeless).isEmpty, "nobody below a fair share of 2")
    }

    @Test func theMoveBudgetRefillsOverAMinute() {
        var budget = MoveBudget(perMinute: 60)
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        #expect(budget.take(100, now: start) == 60, "a burst of one minute's worth")
        #expect(budget.take(10, now: start.addingTimeInterval(5)) == 5)
        #expect(budget.take(10, now: start.addingTimeInterval(5)) == 0)
        #expect(budget.take(1000, now: start.addingTimeInterval(600)) == 60, "never more than a minute's worth saved up")
        var never = MoveBudget(perMinute: 0)
        #expect(never.take(5, now: start) == 0)
    }
}
