import Foundation
import Tenancy
import TestSupport
import Testing
import Webhooks

/// The webhook rules that need no server: URL checks, backoff bounds, the signature against Python's `hmac`, and the
/// address check repeated at delivery time.
@Suite struct WebhookRulesTests {
    @Test func backoffIsFullJitterDoublingFromOneSecondUpToTheCap() {
        let policy = WebhookPolicy.standard
        #expect(policy.backoff(afterAttempts: 1, random: 1) == .seconds(1))
        #expect(policy.backoff(afterAttempts: 4, random: 1) == .seconds(8))
        #expect(policy.backoff(afterAttempts: 4, random: 0.5) == .seconds(4))
        #expect(policy.backoff(afterAttempts: 4, random: 0) == .zero)
        #expect(policy.backoff(afterAttempts: 12, random: 1) == .seconds(300), "capped at 5 minutes")
        #expect(policy.backoff(afterAttempts: 10_000, random: 1) == .seconds(300))
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        #expect(!policy.givesUp(firstFailure: start, now: start.addingTimeInterval(86_399)))
        #expect(policy.givesUp(firstFailure: start, now: start.addingTimeInterval(86_400)))
        #expect(policy.afterFailure(attempts: 4, firstFailure: start, now: start.addingTimeInterval(10), random: 1) == .retry(at: start.addingTimeInterval(18)))
        #expect(policy.afterFailure(attempts: 4, firstFailure: start, now: start.addingTimeInterval(86_400), random: 1) == .deadLetter)
    }

    @Test(.enabled(if: ExternalTools.pythonEnabled)) func theSignatureIsPythonsHMAC() throws {
        let event = StoredTenantEvent(id: 42, type: "message", at: Date(timeIntervalSince1970: 1_800_000_000), data: #"{"text":"hé \"q\""}"#)
        let request = WebhookRequest(event: event, tenant: try TenantName("acme"), secret: Array("whsec_test".utf8), now: Date(timeIntervalSince1970: 1_800_000_005))
        let headers = Dictionary(uniqueKeysWithValues: request.headers)
        #expect(headers["x-wahost-timestamp"] == "1800000005" && headers["x-wahost-delivery"] == "42" && headers["x-wahost-event"] == "message")
        let body = String(decoding: request.body, as: UTF8.self)
        #expect(body == #"{"id":"42","tenant":"acme","type":"message","timestamp":1800000000,"data":{"text":"hé \"q\""}}"#)
        let python = try runPython(
            """
            import hashlib, hmac, sys
            body = sys.stdin.buffer.read()
            print("sha256=" + hmac.new(b"whsec_test", b"1800000005." + body, hashlib.sha256).hexdigest())
            """, stdin: body)
        #expect(headers["x-wahost-signature"] == python.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    @Test func urlsAreCheckedBeforeAnyRequest() throws {
        #expect(try WebhookURL("https://example.com/hook", allowPrivate: false).port == 443)
        #expect(try WebhookURL("http://example.com:8080/h?x=1", allowPrivate: false).port == 8080)
        #expect(try WebhookURL("http://127.0.0.1:9/h", allowPrivate: true).host == "127.0.0.1", "allowed with the flag")
        // The request goes to the normalised host, the one whose addresses are checked and pinned.
        #expect(try WebhookURL("https://Hooks.Example.COM./a?b=1", allowPrivate: false).text == "https://hooks.example.com/a?b=1")
        for (url, kind) in [
            ("http://10.0.0.1/", WebhookURLError.Kind.forbidden), ("http://[fe80::1]/", .forbidden), ("http://100.64.0.1/", .forbidden),
            ("gopher://example.com/", .invalid), ("https://a:b@example.com/", .invalid), ("", .invalid),
            ("https://" + String(repeating: "a", count: 2100) + ".com/", .invalid), ("http://93.184.216.34:70000/h", .invalid),
        ] {
            #expect(throws: WebhookURLError.self, "\(url)") { try WebhookURL(url, allowPrivate: false) }
            do { _ = try WebhookURL(url, allowPrivate: false) } catch { #expect(error.kind == kind, "\(url)") }
        }
    }

    @Test func aNameIsCheckedAgainAtDeliveryTime() async throws {
        // Configured while it pointed elsewhere, `localhost` now resolves to loopback: the delivery is refused unsent.
        let sender = WebhookSender(allowPrivate: false, timeout: .seconds(2))
        let event = StoredTenantEvent(id: 1, type: "session", at: Date(), data: "{}")
        let request = WebhookRequest(event: event, tenant: try TenantName("acme"), secret: [1], now: Date())
        let outcome = await sender.post(request, to: try WebhookURL("http://localhost:9/h", allowPrivate: false))
        guard case .failed(let reason) = outcome else { Issue.record("delivered to loopback"); return }
        #expect(reason.contains("127.0.0.1") && reason.contains("may not reach"), "\(reason)")
        // A literal private address stored while the flag was on is refused once it is off.
        let literal = await sender.post(request, to: try WebhookURL("http://10.9.8.7:9/h", allowPrivate: true))
        guard case .failed(let literalReason) = literal else { Issue.record("delivered to a private address"); return }
        #expect(literalReason.contains("may not reach"), "\(literalReason)")
        await sender.shutdown()
    }
}
