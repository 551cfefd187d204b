import CQREncode

/// Renders text as a QR code in SVG with libqrencode: black modules on white, a 4-module quiet zone.
enum QRCodeSVG {
    /// The SVG markup, or nil if libqrencode cannot encode the text.
    static func render(_ text: String, pixels: Int = 320) -> String? {
        guard let code = QRcode_encodeString8bit(text, 0, QR_ECLEVEL_M) else { return nil }
        defer { QRcode_free(code) }
        let width = Int(code.pointee.width)
        let quiet = 4
        let size = width + 2 * quiet
        var path = ""
        path.reserveCapacity(width * width * 4)
        for y in 0..<width {
            var x = 0
            while x < width {
                guard code.pointee.data[y * width + x] & 1 == 1 else {
                    x += 1
                    continue
                }
                var run = 1
                while x + run < width, code.pointee.data[y * width + x + run] & 1 == 1 { run += 1 }
                path += "M\(x + quiet) \(y + quiet)h\(run)v1h-\(run)z"
                x += run
            }
        }
        return """
            <svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="QR code to scan with WhatsApp" width="\(pixels)" height="\(pixels)" \
            viewBox="0 0 \(size) \(size)" shape-rendering="crispEdges"><rect width="\(size)" height="\(size)" fill="#fff"/>\
            <path fill="#000" d="\(path)"/></svg>
            """
    }
}
