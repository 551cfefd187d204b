import ArgumentParser
import Foundation

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Where the running server is and the tenant's token, for commands that ask it.
struct RunningServerOptions: ParsableArguments {
    @Option(help: "The running server.") var url = "http://127.0.0.1:8080"
    @Option(help: "The tenant's admin token (env WAHOST_ADMIN_TOKEN).") var token: String?

    /// The server these options name; exit code 2 without a token.
    func server() throws -> RunningServer { try RunningServer(url: url, token: token) }
}

/// One request to the running server's API from the command line, with the tenant's admin token.
struct RunningServer {
    let url: String
    let token: String

    /// The server at `url` with `token`, or `WAHOST_ADMIN_TOKEN`; exit code 2 without one.
    init(url: String, token: String?) throws {
        guard let token = token ?? ProcessInfo.processInfo.environment["WAHOST_ADMIN_TOKEN"], !token.isEmpty else {
            throw fail("an admin token is required (--token or WAHOST_ADMIN_TOKEN)", code: 2)
        }
        self.url = url
        self.token = token
    }

    /// Sends the request; returns the JSON answer on `expected`, else exits 1 with the server's message.
    func call(_ method: String, _ path: String, headers: [String: String] = [:], body: [String: String]? = nil, expected: Int) async throws
        -> [String: Any]
    {
        guard let endpoint = URL(string: url.trimmingCharacters(in: CharacterSet(charactersIn: "/")) + path) else {
            throw fail("invalid --url", code: 2)
        }
        var request = URLRequest(url: endpoint)
        request.httpMethod = method
        request.timeoutInterval = 90
        request.setValue(token, forHTTPHeaderField: "x-admin-token")
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        if let body {
            request.setValue("application/json", forHTTPHeaderField: "content-type")
            request.httpBody = try JSONSerialization.data(withJSONObject: body)
        }
        let data: Data
        let response: URLResponse
        do { (data, response) = try await URLSession.shared.data(for: request) } catch {
            throw fail("cannot reach \(url): \(error.localizedDescription)", code: 1)
        }
        let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
        guard (response as? HTTPURLResponse)?.statusCode == expected else {
            let message = ((object["error"] as? [String: Any])?["message"] as? String) ?? String(decoding: data, as: UTF8.self)
            throw fail("the server refused: \(message)", code: 1)
        }
        return object
    }
}
