extension Sequence where Element == UInt8 {
    /// The bytes in lowercase hexadecimal, two digits each: how keys, fingerprints and random
    /// secrets are written wherever they are shown or stored as text.
    public var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var characters: [UInt8] = []
        characters.reserveCapacity(underestimatedCount * 2)
        for byte in self {
            characters.append(digits[Int(byte >> 4)])
            characters.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: characters, as: UTF8.self)
    }
}
