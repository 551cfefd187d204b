import Logging
import Tenancy
import Testing

/// An outage begins when the database cannot be reached, not when one call waited too long while others got through.
@Suite struct StorageOutageTests {
    let unavailable = RepositoryError(.unavailable, "PostgreSQL did not answer within 5 s")

    func timedOut(at start: ContinuousClock.Instant) -> StorageOutage.FailedCall {
        StorageOutage.FailedCall(startedAt: start, deadline: .seconds(5), timedOut: true)
    }

    @Test func aSlowCallOvertakenByASuccessfulOneBeginsNoOutage() {
        let outage = StorageOutage(backend: "postgres", logger: Logger(label: "test"))
        let start = ContinuousClock.now
        outage.succeeded(now: start + .seconds(1))
        outage.failed(unavailable, call: timedOut(at: start), now: start + .seconds(5))
        #expect(!outage.isUnavailable, "a call waiting on a lock while others succeed is a slow call, not an outage")
        #expect(outage.refusal(now: start + .seconds(5)) == nil)
    }

    @Test func aSlowCallThatNothingOvertookBeginsAnOutage() {
        let outage = StorageOutage(backend: "postgres", logger: Logger(label: "test"))
        let start = ContinuousClock.now
        outage.succeeded(now: start - .seconds(1))
        outage.failed(unavailable, call: timedOut(at: start), now: start + .seconds(5))
        #expect(outage.isUnavailable, "nothing got through while the call waited: the database is away")
        outage.succeeded(now: start + .seconds(7))
        #expect(!outage.isUnavailable)
    }

    @Test func aConnectionFailureBeginsAnOutageWhateverSucceededBefore() {
        let outage = StorageOutage(backend: "postgres", logger: Logger(label: "test"))
        let start = ContinuousClock.now
        outage.succeeded(now: start)
        outage.failed(unavailable, now: start + .milliseconds(1))
        #expect(outage.isUnavailable)
        #expect(outage.refusal(now: start + .milliseconds(2)) != nil, "calls fail at once during an outage")
    }

    @Test func aCallThatSpannedAPauseOfTheProcessBeginsNoOutage() {
        // SIGSTOP past the lease, then SIGCONT: the calls in flight end on waking, 13 s after they started, their 5 s
        // deadline long gone (or their connection closed by the server meanwhile); the database answered all along.
        let outage = StorageOutage(backend: "postgres", logger: Logger(label: "test"))
        let start = ContinuousClock.now
        outage.succeeded(now: start - .seconds(1))
        outage.failed(unavailable, call: timedOut(at: start), now: start + .seconds(13))
        let closed = RepositoryError(.unavailable, "PostgreSQL: connection closed")
        outage.failed(closed, call: StorageOutage.FailedCall(startedAt: start, deadline: .seconds(5), timedOut: false), now: start + .seconds(13))
        #expect(!outage.isUnavailable, "a stopped process's calls say nothing about the database")
        #expect(outage.refusal(now: start + .seconds(13)) == nil, "the requests that come in after the pause reach the database")
        // A call that ends at its deadline, nothing else getting through, still begins an outage.
        outage.failed(unavailable, call: timedOut(at: start + .seconds(13)), now: start + .milliseconds(18_050))
        #expect(outage.isUnavailable)
    }
}
