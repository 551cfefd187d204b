import Logging
import Tenancy
import Testing

/// An outage begins when the database cannot be reached, not when one call waited too long while others got through.
@Suite struct StorageOutageTests {
    let unavailable = RepositoryError(.unavailable, "PostgreSQL did not answer within 5 s")

    @Test func aSlowCallOvertakenByASuccessfulOneBeginsNoOutage() {
        let outage = StorageOutage(backend: "postgres", logger: Logger(label: "test"))
        let start = ContinuousClock.now
        outage.succeeded(now: start + .seconds(1))
        outage.failed(unavailable, slowCallStartedAt: start, now: start + .seconds(5))
        #expect(!outage.isUnavailable, "a call waiting on a lock while others succeed is a slow call, not an outage")
        #expect(outage.refusal(now: start + .seconds(5)) == nil)
    }

    @Test func aSlowCallThatNothingOvertookBeginsAnOutage() {
        let outage = StorageOutage(backend: "postgres", logger: Logger(label: "test"))
        let start = ContinuousClock.now
        outage.succeeded(now: start - .seconds(1))
        outage.failed(unavailable, slowCallStartedAt: start, now: start + .seconds(5))
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
}
