import CQREncode

/// Renders text as a QR code for a terminal, two modules per character cell with Unicode half blocks.
public enum TerminalQR {
    /// The QR code of `text` with a quiet zone, or nil if libqrencode cannot encode it.
    public static func render(_ text: String) -> String? {
        guard let code = QRcode_encodeString8bit(text, 0, QR_ECLEVEL_L) else { return nil }
        defer { QRcode_free(code) }
        let width = Int(code.pointee.width)
        let quiet = 2
        let size = width + 2 * quiet
        func dark(_ x: Int, _ y: Int) -> Bool {
            let (cx, cy) = (x - quiet, y - quiet)
            guard cx >= 0, cy >= 0, cx < width, cy < width else { return false }
            return code.pointee.data[cy * width + cx] & 1 == 1
        }
        var output = ""
        for y in stride(from: 0, to: size, by: 2) {
            for x in 0..<size {
                // Light modules are printed as full blocks so the code reads on dark terminals.
                switch (dark(x, y), dark(x, y + 1)) {
                case (false, false): output += "█"
                case (false, true): output += "▀"
                case (true, false): output += "▄"
                case (true, true): output += " "
                }
            }
            output += "\n"
        }
        return output
    }
}
