/// An 8-bit sRGB colour: the pixel type of `Canvas` and of the pictures drawn on it.
public struct RGB: Equatable, Hashable, Sendable {
    public var r: UInt8
    public var g: UInt8
    public var b: UInt8
    public init(_ r: UInt8, _ g: UInt8, _ b: UInt8) { self.r = r; self.g = g; self.b = b }

    public static let black = RGB(0, 0, 0)
    public static let white = RGB(255, 255, 255)
    public static let gray = RGB(128, 128, 128)
    public static let lightGray = RGB(220, 220, 220)
    public static let darkGray = RGB(64, 64, 64)
    public static let red = RGB(220, 20, 20)

    /// A categorical palette for chart series (matplotlib's "tab10" hues).
    public static let series: [RGB] = [
        RGB(31, 119, 180), RGB(255, 127, 14), RGB(44, 160, 44), RGB(214, 39, 40), RGB(148, 103, 189),
        RGB(140, 86, 75), RGB(227, 119, 194), RGB(127, 127, 127), RGB(188, 189, 34), RGB(23, 190, 207),
    ]

    /// Relative luminance in [0, 1] (Rec. 709 weights on the 8-bit values) — picks black or
    /// white text over a coloured cell.
    public var luminance: Double {
        (0.2126 * Double(r) + 0.7152 * Double(g) + 0.0722 * Double(b)) / 255
    }

    /// `a + (b − a)·t` rounded to a byte.
    @inline(__always)
    public static func mix(_ a: UInt8, _ b: UInt8, _ t: Double) -> UInt8 {
        let v = Double(a) + (Double(b) - Double(a)) * t
        return UInt8(Swift.min(255, Swift.max(0, v.rounded())))
    }
}
