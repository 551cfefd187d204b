import Testing
import WABinary

@testable import WhatsApp

/// The send caches: fresh lists are reused, old ones and changed ones are asked for again, sizes stay bounded.
@Suite struct SendCachesTests {
    let alice = JID.phoneNumber("15557770001")
    let bob = JID.phoneNumber("15557770002")

    @Test func deviceListsAreReusedUntilTheyAgeOrChange() {
        var caches = SendCaches()
        let start = ContinuousClock.now
        caches.store(deviceLists: [alice: [alice, alice.withDevice(3)]], at: start)
        var lookup = caches.deviceLists(of: [alice, bob], now: start + .seconds(60))
        #expect(lookup.known == [alice: [alice, alice.withDevice(3)]] && lookup.missing == [bob])
        lookup = caches.deviceLists(of: [alice], now: start + SendCaches.deviceListLifetime)
        #expect(lookup.missing == [alice], "an hour old: asked again")
        caches.devicesChanged(of: alice.withDevice(3))
        #expect(caches.deviceLists(of: [alice], now: start).missing == [alice], "a devices notification drops the list")
    }

    @Test func sizesStayBounded() {
        var caches = SendCaches()
        let start = ContinuousClock.now
        for index in 0..<(SendCaches.deviceListLimit + 10) {
            caches.store(deviceLists: [.phoneNumber("1555000\(index)"): []], at: start + .milliseconds(index))
        }
        let all = (0..<(SendCaches.deviceListLimit + 10)).map { JID.phoneNumber("1555000\($0)") }
        let lookup = caches.deviceLists(of: all, now: start + .seconds(1))
        #expect(lookup.known.count == SendCaches.deviceListLimit && lookup.missing == Array(all.prefix(10)), "the oldest go first")
        for index in 0..<(SendCaches.groupLimit + 5) {
            caches.store(members: [.group("1203630\(index)"): [alice]])
            caches.addHolders([alice], of: .group("1203630\(index)"))
        }
        let groups = (0..<(SendCaches.groupLimit + 5)).map { JID.group("1203630\($0)") }
        #expect(groups.filter { caches.members(of: $0) != nil }.count == SendCaches.groupLimit)
        #expect(groups.filter { !caches.holders(of: $0).isEmpty }.count == SendCaches.groupLimit)
    }

    @Test func groupChangesAndNewSenderKeysResetWhatIsKnown() {
        var caches = SendCaches()
        let group = JID.group("120363025246125486")
        caches.store(members: [group: [alice, bob]])
        caches.addHolders([alice, bob], of: group)
        caches.groupChanged(group)
        #expect(caches.members(of: group) == nil && caches.holders(of: group) == [alice, bob], "members asked again; holders keep the key")
        caches.forgetHolders(of: group)
        #expect(caches.holders(of: group).isEmpty)
    }
}
