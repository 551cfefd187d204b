/// A request the client made failed.
public struct WhatsAppClientError: Error, Sendable, Equatable, CustomStringConvertible {
    private enum Code: Equatable {
        case notConnected
        case notLoggedIn
        case timedOut
        case disconnected
        case serverError(Int, String)
        case malformedResponse(String)
        case alreadyPaired
        case pairing(String)
        case invalidPhoneNumber(String)
        case notOnWhatsApp(String)
        case encryption(String)
    }

    private let code: Code

    static let notConnected = WhatsAppClientError(code: .notConnected)
    static let notLoggedIn = WhatsAppClientError(code: .notLoggedIn)
    static let timedOut = WhatsAppClientError(code: .timedOut)
    static let disconnected = WhatsAppClientError(code: .disconnected)
    static let alreadyPaired = WhatsAppClientError(code: .alreadyPaired)
    static func serverError(_ code: Int, _ text: String) -> WhatsAppClientError { WhatsAppClientError(code: .serverError(code, text)) }
    static func malformedResponse(_ what: String) -> WhatsAppClientError { WhatsAppClientError(code: .malformedResponse(what)) }
    static func pairing(_ what: String) -> WhatsAppClientError { WhatsAppClientError(code: .pairing(what)) }
    static func invalidPhoneNumber(_ what: String) -> WhatsAppClientError { WhatsAppClientError(code: .invalidPhoneNumber(what)) }
    static func notOnWhatsApp(_ who: String) -> WhatsAppClientError { WhatsAppClientError(code: .notOnWhatsApp(who)) }
    static func encryption(_ what: String) -> WhatsAppClientError { WhatsAppClientError(code: .encryption(what)) }

    /// True when the request failed because the session is not connected or not logged in.
    public var isNotConnected: Bool { code == .notConnected || code == .notLoggedIn || code == .disconnected }

    /// True when a pairing-code request was refused because the phone number is not usable.
    public var isInvalidPhoneNumber: Bool { if case .invalidPhoneNumber = code { true } else { false } }

    /// True when a recipient has no WhatsApp account (no devices).
    public var isNotOnWhatsApp: Bool { if case .notOnWhatsApp = code { true } else { false } }

    /// True when the server did not answer in time.
    public var isTimeout: Bool { code == .timedOut }

    public var description: String {
        switch code {
        case .notConnected: "not connected"
        case .notLoggedIn: "not logged in"
        case .timedOut: "request timed out"
        case .disconnected: "connection ended before the answer arrived"
        case .serverError(let code, let text): "server answered error \(code) \(text)"
        case .malformedResponse(let what): "malformed response: \(what)"
        case .alreadyPaired: "already paired"
        case .pairing(let what): "pairing failed: \(what)"
        case .invalidPhoneNumber(let what): "invalid phone number: \(what)"
        case .notOnWhatsApp(let who): "\(who) is not on WhatsApp"
        case .encryption(let what): "cannot encrypt the message: \(what)"
        }
    }
}
