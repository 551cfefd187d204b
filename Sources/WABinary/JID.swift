// WhatsApp addresses (docs/protocol-notes.md#jids): `user[.agent][:device]@server`.

/// A WhatsApp address such as `12345678901@s.whatsapp.net`, `98765:17@lid` or `1203…@g.us`.
public struct JID: Hashable, Sendable {
    /// The user part: a phone number, a LID, a group id, `status`, or empty for a bare server.
    public var user: String
    /// The agent byte of a phone-number AD JID whose domain byte was not a known domain; 0 almost always.
    public var rawAgent: UInt8
    /// The device number: 0 is the primary phone, companions get 1 and up.
    public var device: UInt16
    /// The integrator id of an `interop` JID; 0 everywhere else.
    public var integrator: UInt16
    /// The server (domain) part.
    public var server: Server

    /// Creates a JID from its parts; see `JID(parsing:)` for the textual form.
    public init(user: String, rawAgent: UInt8 = 0, device: UInt16 = 0, integrator: UInt16 = 0, server: Server) {
        self.user = user
        self.rawAgent = rawAgent
        self.device = device
        self.integrator = integrator
        self.server = server
    }
}

extension JID {
    /// The server part of a JID; known servers are static members, any other string is kept as is.
    public struct Server: RawRepresentable, Hashable, Sendable, ExpressibleByStringLiteral, CustomStringConvertible {
        /// The server as written after the `@`.
        public let rawValue: String

        /// Wraps a server string.
        public init(rawValue: String) {
            self.rawValue = rawValue
        }

        /// Wraps a server string literal.
        public init(stringLiteral value: String) {
            self.rawValue = value
        }

        /// The server string.
        public var description: String { rawValue }

        /// `s.whatsapp.net`: phone-number (PN) users, and the WhatsApp server itself.
        public static let phoneNumber: Server = "s.whatsapp.net"
        /// `lid`: LID users (opaque ids that hide phone numbers).
        public static let lid: Server = "lid"
        /// `g.us`: groups.
        public static let group: Server = "g.us"
        /// `broadcast`: the status broadcast and broadcast lists.
        public static let broadcast: Server = "broadcast"
        /// `newsletter`: channels.
        public static let newsletter: Server = "newsletter"
        /// `bot`: bots.
        public static let bot: Server = "bot"
        /// `hosted`: hosted (business / Cloud API) devices, phone-number side.
        public static let hosted: Server = "hosted"
        /// `hosted.lid`: hosted devices, LID side.
        public static let hostedLID: Server = "hosted.lid"
        /// `msgr`: Messenger users.
        public static let messenger: Server = "msgr"
        /// `interop`: interoperability users (`<integrator>-<user>:<device>@interop`).
        public static let interop: Server = "interop"
        /// `c.us`: the legacy user server.
        public static let legacyUser: Server = "c.us"

        /// The servers above; only these may be written without an `@` as a bare server JID.
        public static let known: Set<Server> = [
            .phoneNumber, .lid, .group, .broadcast, .newsletter, .bot, .hosted, .hostedLID, .messenger, .interop,
            .legacyUser,
        ]
    }
}

// MARK: - Common JIDs and constructors

extension JID {
    /// `s.whatsapp.net` with no user: the `to` of every IQ addressed to the server.
    public static let whatsappServer = JID(user: "", server: .phoneNumber)
    /// `g.us` with no user: the `to` of group IQs.
    public static let groupServer = JID(user: "", server: .group)
    /// `status@broadcast`.
    public static let statusBroadcast = JID(user: "status", server: .broadcast)
    /// A placeholder with no user and no server, returned by `AttributeReader` when a JID is missing; not encodable.
    public static let empty = JID(user: "", server: Server(rawValue: ""))

    /// A phone-number JID, `user[:device]@s.whatsapp.net`.
    public static func phoneNumber(_ user: String, device: UInt16 = 0) -> JID {
        JID(user: user, device: device, server: .phoneNumber)
    }

    /// A LID JID, `user[:device]@lid`.
    public static func lid(_ user: String, device: UInt16 = 0) -> JID {
        JID(user: user, device: device, server: .lid)
    }

    /// A group JID, `id@g.us`.
    public static func group(_ id: String) -> JID {
        JID(user: id, server: .group)
    }
}

// MARK: - Classification

extension JID {
    /// True when the JID names a device (an "AD JID"): it has a device or agent part.
    public var isAD: Bool { device != 0 || rawAgent != 0 }
    /// True for a phone-number (`s.whatsapp.net`) JID with a user.
    public var isPhoneNumber: Bool { server == .phoneNumber && !user.isEmpty }
    /// True for a LID (`lid`) JID.
    public var isLID: Bool { server == .lid }
    /// True for a group (`g.us`) JID.
    public var isGroup: Bool { server == .group }
    /// True for a bare server JID such as `s.whatsapp.net` (no user, no device).
    public var isServer: Bool { user.isEmpty && device == 0 && rawAgent == 0 && !server.rawValue.isEmpty }
    /// True for the `JID.empty` placeholder (no server).
    public var isEmpty: Bool { server.rawValue.isEmpty }

    /// The same user without agent and device: the account rather than one of its devices.
    public var withoutDevice: JID {
        JID(user: user, integrator: integrator, server: server)
    }

    /// The same user with the given device number.
    public func withDevice(_ device: UInt16) -> JID {
        var copy = self
        copy.device = device
        return copy
    }
}

// MARK: - Text

extension JID: CustomStringConvertible {
    /// The textual form: `user@server`, `user:device@server`, `user.agent:device@server`,
    /// `integrator-user:device@interop`, or just `server` for a bare server.
    public var description: String {
        if server == .interop {
            return "\(integrator)-\(user):\(device)@\(server.rawValue)"
        }
        if rawAgent != 0 {
            return "\(user).\(rawAgent):\(device)@\(server.rawValue)"
        }
        if device != 0 {
            return "\(user):\(device)@\(server.rawValue)"
        }
        if user.isEmpty {
            return server.rawValue
        }
        return "\(user)@\(server.rawValue)"
    }

    /// Parses the textual form; a bare known server may be written `s.whatsapp.net` or `@s.whatsapp.net`.
    public init(parsing text: String) throws(JIDParseError) {
        guard !text.isEmpty else { throw JIDParseError(.empty, input: text) }
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count <= 2 else { throw JIDParseError(.tooManyAtSigns, input: text) }
        guard let serverPart = parts.last, !serverPart.isEmpty else {
            throw JIDParseError(.emptyServer, input: text)
        }
        let server = Server(rawValue: String(serverPart))
        guard parts.count == 2 || Server.known.contains(server) else {
            throw JIDParseError(.unknownBareServer, input: text)
        }
        var userPart = parts.count == 2 ? parts[0] : ""

        var integrator: UInt16 = 0
        if server == .interop, let dash = userPart.firstIndex(of: "-") {
            guard let value = Self.parseNumber(userPart[..<dash], as: UInt16.self) else {
                throw JIDParseError(.invalidIntegrator, input: text)
            }
            integrator = value
            userPart = userPart[userPart.index(after: dash)...]
        }

        var device: UInt16 = 0
        let colons = userPart.split(separator: ":", omittingEmptySubsequences: false)
        guard colons.count <= 2 else { throw JIDParseError(.invalidDevice, input: text) }
        if colons.count == 2 {
            guard let value = Self.parseNumber(colons[1], as: UInt16.self) else {
                throw JIDParseError(.invalidDevice, input: text)
            }
            let wideDevices = server == .messenger || server == .interop
            guard wideDevices || value <= UInt8.max else { throw JIDParseError(.invalidDevice, input: text) }
            device = value
            userPart = colons[0]
        }

        var rawAgent: UInt8 = 0
        if server == .phoneNumber, let dot = userPart.lastIndex(of: ".") {
            guard let value = Self.parseNumber(userPart[userPart.index(after: dot)...], as: UInt8.self),
                !Self.reservedAgents.contains(value)
            else {
                throw JIDParseError(.invalidAgent, input: text)
            }
            rawAgent = value
            userPart = userPart[..<dot]
        }

        if userPart.isEmpty && (device != 0 || rawAgent != 0 || integrator != 0) {
            throw JIDParseError(.missingUser, input: text)
        }
        self.init(user: String(userPart), rawAgent: rawAgent, device: device, integrator: integrator, server: server)
    }

    /// Domain bytes of AD JIDs that name a server; a phone-number JID cannot use them as its agent.
    static let reservedAgents: Set<UInt8> = [1, 128, 129]

    /// Parses 1...5 ASCII digits into `T`, or nil when they are not digits or do not fit.
    private static func parseNumber<T: FixedWidthInteger>(_ digits: Substring, as type: T.Type) -> T? {
        guard !digits.isEmpty, digits.utf8.count <= 5 else { return nil }
        var value = 0
        for byte in digits.utf8 {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
        }
        return T(exactly: value)
    }
}

/// A string that is not a valid JID.
public struct JIDParseError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What is wrong with the string.
    public struct Reason: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String, Sendable {
            case empty = "empty string"
            case tooManyAtSigns = "more than one '@'"
            case emptyServer = "empty server"
            case invalidDevice = "invalid device number"
            case invalidAgent = "invalid agent number"
            case invalidIntegrator = "invalid integrator number"
            case missingUser = "device, agent or integrator without a user"
            case unknownBareServer = "no '@' and not a known server"
        }

        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// A short description of the problem.
        public var description: String { value.rawValue }

        /// The string is empty.
        public static let empty = Reason(.empty)
        /// The string has more than one `@`.
        public static let tooManyAtSigns = Reason(.tooManyAtSigns)
        /// Nothing follows the `@`.
        public static let emptyServer = Reason(.emptyServer)
        /// The device is not a number, or too big for the server (255, or 65535 for `msgr`/`interop`).
        public static let invalidDevice = Reason(.invalidDevice)
        /// The agent is not a number in 0...255 or is a reserved domain byte (1, 128, 129).
        public static let invalidAgent = Reason(.invalidAgent)
        /// The interop integrator is not a number in 0...65535.
        public static let invalidIntegrator = Reason(.invalidIntegrator)
        /// A device, agent or integrator part comes without a user.
        public static let missingUser = Reason(.missingUser)
        /// There is no `@` and the string is not a known server name.
        public static let unknownBareServer = Reason(.unknownBareServer)
    }

    /// What is wrong.
    public let reason: Reason
    /// The string that failed to parse.
    public let input: String

    init(_ reason: Reason, input: String) {
        self.reason = reason
        self.input = input
    }

    /// A message naming the problem and the input.
    public var description: String { "invalid JID \"\(input)\": \(reason)" }
}
