/// A session request could not be carried out.
public struct SessionPoolError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong, for mapping to HTTP statuses.
    public enum Kind: Sendable, Equatable {
        /// The session is not in a state that allows the request (e.g. groups while unpaired).
        case wrongState
        /// Another node runs this session.
        case ownedElsewhere
        /// The session is moving between nodes (handed over, or taken over after its node stopped); retry shortly.
        case moving
        /// WhatsApp (or the simulator) did not answer or refused; retry later.
        case upstreamUnavailable
        /// The request's input is invalid (e.g. a phone number).
        case invalidInput
        /// The pool is shutting down or the database is unreachable.
        case unavailable
        /// A message recipient is not a phone number, account or group JID.
        case invalidRecipient
        /// A message recipient has no WhatsApp account.
        case notOnWhatsApp
        /// WhatsApp did not answer in time.
        case upstreamTimeout
        /// The same idempotency key is being used by a request still in progress.
        case idempotencyKeyInUse
    }

    /// What went wrong.
    public let kind: Kind
    /// A message for the caller; never contains secrets.
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}
