import Foundation
import TestSupport
import Testing
import WhatsAppServerSide

@testable import WhatsApp

/// A child process spoken to over stdin/stdout with 3-byte length frames.
private final class FramedProcess {
    private let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private let errorPath: String

    init(_ executable: String, _ arguments: [String]) throws {
        errorPath = NSTemporaryDirectory() + "/wahost-noise-\(UUID().uuidString).stderr"
        guard FileManager.default.createFile(atPath: errorPath, contents: nil) else {
            throw TestSupportError("cannot create \(errorPath)")
        }
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = input
        process.standardOutput = output
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errorPath))
        try process.run()
    }

    func write(raw bytes: [UInt8]) throws {
        try input.fileHandleForWriting.write(contentsOf: Data(bytes))
    }

    func write(frame body: [UInt8]) throws {
        let length = body.count
        try write(raw: [UInt8(length >> 16), UInt8(truncatingIfNeeded: length >> 8), UInt8(truncatingIfNeeded: length)] + body)
    }

    func readFrame() throws -> [UInt8] {
        let header = try readExactly(3)
        return try readExactly(Int(header[0]) << 16 | Int(header[1]) << 8 | Int(header[2]))
    }

    private func readExactly(_ count: Int) throws -> [UInt8] {
        var bytes: [UInt8] = []
        while bytes.count < count {
            guard let chunk = try output.fileHandleForReading.read(upToCount: count - bytes.count), !chunk.isEmpty else {
                throw TestSupportError("responder closed its output early: \(stderr)")
            }
            bytes += chunk
        }
        return bytes
    }

    /// Closes stdin and waits; returns the exit status.
    func finish() throws -> Int32 {
        try input.fileHandleForWriting.close()
        process.waitUntilExit()
        return process.terminationStatus
    }

    var stderr: String { (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? "" }

    deinit {
        if process.isRunning { process.terminate() }
        try? FileManager.default.removeItem(atPath: errorPath)
    }
}

@Suite struct NoiseInteropTests {
    /// Our initiator against a responder built on PyPI `noiseprotocol` (Tests/WhatsAppTests/python/noise_responder.py).
    @Test(.enabled(if: ExternalTools.pythonEnabled)) func initiatorAgainstNoiseprotocolResponder() throws {
        let python = try requireTestPython()
        let serverStatic = Curve25519KeyPair.generate()
        var builder = CertificateChainBuilder()
        let now = Date()
        let seconds = UInt64(now.timeIntervalSince1970)
        builder.intermediateValidity = (seconds - 86_400)...(seconds + 86_400)
        builder.leafValidity = (seconds - 3_600)...(seconds + 3_600)
        let chain = try builder.build(leafKey: serverStatic.publicKey)
        let responder = try FramedProcess(
            python, [pythonScriptPath("noise_responder.py"), hexOf(serverStatic.privateKey), hexOf(chain)])

        let clientStatic = Curve25519KeyPair.generate()
        var client = try NoiseHandshake(configuration: .init(rootPublicKey: builder.root.publicKey), staticKeyPair: clientStatic)
        try responder.write(raw: NoiseHandshake.whatsAppHeader)
        try responder.write(frame: client.makeClientHello())
        let serverHello = try responder.readFrame()
        let payload = Array("a ClientPayload".utf8)
        let done = try client.receiveServerHello(serverHello, clientPayload: payload, now: now)
        #expect(done.serverStaticKey == serverStatic.publicKey)
        try responder.write(frame: done.clientFinish)

        var transport = done.transport
        let ping = Array("ping from wahost".utf8)
        try responder.write(frame: transport.encrypt(ping))
        let reply = try transport.decrypt(responder.readFrame())
        #expect(reply == Array("pong:".utf8) + ping + [UInt8(ascii: "|")] + clientStatic.publicKey + [UInt8(ascii: "|")] + payload)
        let status = try responder.finish()
        #expect(status == 0, "\(responder.stderr)")
    }
}
