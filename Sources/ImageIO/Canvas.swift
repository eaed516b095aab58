/// A small RGB8 rasteriser: the drawing surface every picture of this module is made on.
///
/// Pixels are stored row-major, three bytes per pixel (`pixels[3·(y·width + x) + c]`,
/// c = R, G, B), origin at the top-left — the layout libpng's simplified API writes as
/// `PNG_FORMAT_RGB`. Coordinates of the vector primitives (lines, polylines) are in
/// pixel units with pixel `(x, y)` covering the square `[x, x+1) × [y, y+1)`, so its
/// centre is `(x + 0.5, y + 0.5)`.
///
/// Primitives:
/// * `fillRect` / `strokeRect`: axis-aligned boxes, clipped to the canvas.
/// * `drawLine(thickness:)`: a capsule of radius `t/2` around the segment, drawn with
///   coverage `clamp(t/2 + 1/2 − d, 0, 1)` (d = distance of the pixel centre to the
///   segment) blended over the background — a one-pixel anti-aliased edge.
/// * `blit`: draws another canvas scaled into a rectangle, nearest or bilinear
///   (`align_corners = false` sampling: source coordinate `(x + ½)·sw/dw − ½`).
/// * text: `drawText` with the built-in 5×7 bitmap font (`BitmapFont`).
public struct Canvas: Equatable, Sendable {
    /// Width and height in pixels.
    public let width: Int
    public let height: Int
    /// Row-major RGB bytes, `3 · width · height` of them.
    public var pixels: [UInt8]

    /// A canvas filled with `background`.
    public init(width: Int, height: Int, background: RGB = .white) {
        precondition(width >= 0 && height >= 0, "Canvas of \(width)×\(height)")
        self.width = width
        self.height = height
        var p = [UInt8](repeating: 0, count: 3 * width * height)
        p.withUnsafeMutableBufferPointer { b in
            for i in 0..<(width * height) {
                b[3 * i] = background.r; b[3 * i + 1] = background.g; b[3 * i + 2] = background.b
            }
        }
        self.pixels = p
    }

    /// A canvas over existing RGB bytes (`3 · width · height`).
    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(pixels.count == 3 * width * height, "Canvas \(width)×\(height) given \(pixels.count) bytes")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// The colour at `(x, y)`.
    public subscript(x: Int, y: Int) -> RGB {
        get {
            precondition(x >= 0 && x < width && y >= 0 && y < height, "pixel (\(x), \(y)) outside \(width)×\(height)")
            let i = 3 * (y * width + x)
            return RGB(pixels[i], pixels[i + 1], pixels[i + 2])
        }
        set {
            precondition(x >= 0 && x < width && y >= 0 && y < height, "pixel (\(x), \(y)) outside \(width)×\(height)")
            let i = 3 * (y * width + x)
            pixels[i] = newValue.r; pixels[i + 1] = newValue.g; pixels[i + 2] = newValue.b
        }
    }

    /// Sets the pixel if it lies on the canvas.
    @inline(__always)
    public mutating func plot(_ x: Int, _ y: Int, _ color: RGB) {
        guard x >= 0, x < width, y >= 0, y < height else { return }
        let i = 3 * (y * width + x)
        pixels[i] = color.r; pixels[i + 1] = color.g; pixels[i + 2] = color.b
    }

    /// Blends `color` over the pixel with opacity `alpha` ∈ [0, 1] if it lies on the canvas.
    @inline(__always)
    public mutating func blend(_ x: Int, _ y: Int, _ color: RGB, alpha: Double) {
        guard x >= 0, x < width, y >= 0, y < height, alpha > 0 else { return }
        let a = Swift.min(alpha, 1)
        let i = 3 * (y * width + x)
        pixels[i] = RGB.mix(pixels[i], color.r, a)
        pixels[i + 1] = RGB.mix(pixels[i + 1], color.g, a)
        pixels[i + 2] = RGB.mix(pixels[i + 2], color.b, a)
    }

    // MARK: rectangles

    /// Fills the rectangle `[x, x+w) × [y, y+h)`, clipped to the canvas.
    public mutating func fillRect(x: Int, y: Int, width w: Int, height h: Int, color: RGB) {
        let x0 = Swift.max(0, x), x1 = Swift.min(width, x + w)
        let y0 = Swift.max(0, y), y1 = Swift.min(height, y + h)
        guard x0 < x1, y0 < y1 else { return }
        let W = width
        pixels.withUnsafeMutableBufferPointer { p in
            for yy in y0..<y1 {
                var i = 3 * (yy * W + x0)
                for _ in x0..<x1 {
                    p[i] = color.r; p[i + 1] = color.g; p[i + 2] = color.b
                    i += 3
                }
            }
        }
    }

    /// Draws the outline of the rectangle `[x, x+w) × [y, y+h)` with the given thickness
    /// (inside the rectangle).
    public mutating func strokeRect(x: Int, y: Int, width w: Int, height h: Int, color: RGB, thickness t: Int = 1) {
        fillRect(x: x, y: y, width: w, height: t, color: color)
        fillRect(x: x, y: y + h - t, width: w, height: t, color: color)
        fillRect(x: x, y: y, width: t, height: h, color: color)
        fillRect(x: x + w - t, y: y, width: t, height: h, color: color)
    }

    // MARK: lines

    /// Draws the segment from `(x0, y0)` to `(x1, y1)` as an anti-aliased capsule of the given
    /// thickness (pixel units, pixel centres at half-integers).
    public mutating func drawLine(from p0: (x: Double, y: Double), to p1: (x: Double, y: Double),
                                  color: RGB, thickness: Double = 1) {
        guard p0.x.isFinite, p0.y.isFinite, p1.x.isFinite, p1.y.isFinite else { return }
        let r = Swift.max(thickness, 0.5) / 2
        let minX = Swift.max(0, Int((Swift.min(p0.x, p1.x) - r - 1).rounded(.down)))
        let maxX = Swift.min(width - 1, Int((Swift.max(p0.x, p1.x) + r + 1).rounded(.up)))
        let minY = Swift.max(0, Int((Swift.min(p0.y, p1.y) - r - 1).rounded(.down)))
        let maxY = Swift.min(height - 1, Int((Swift.max(p0.y, p1.y) + r + 1).rounded(.up)))
        guard minX <= maxX, minY <= maxY else { return }
        let dx = p1.x - p0.x, dy = p1.y - p0.y
        let len2 = dx * dx + dy * dy
        for y in minY...maxY {
            let cy = Double(y) + 0.5
            for x in minX...maxX {
                let cx = Double(x) + 0.5
                var t = len2 > 0 ? ((cx - p0.x) * dx + (cy - p0.y) * dy) / len2 : 0
                t = Swift.min(1, Swift.max(0, t))
                let ex = cx - (p0.x + t * dx), ey = cy - (p0.y + t * dy)
                let d = (ex * ex + ey * ey).squareRoot()
                let coverage = r + 0.5 - d
                if coverage >= 1 { plot(x, y, color) } else if coverage > 0 { blend(x, y, color, alpha: coverage) }
            }
        }
    }

    /// Draws consecutive segments through `points` (non-finite points break the line).
    public mutating func drawPolyline(_ points: [(x: Double, y: Double)], color: RGB, thickness: Double = 1) {
        guard points.count >= 2 else {
            if let p = points.first, p.x.isFinite, p.y.isFinite { drawLine(from: p, to: p, color: color, thickness: thickness) }
            return
        }
        for i in 1..<points.count {
            drawLine(from: points[i - 1], to: points[i], color: color, thickness: thickness)
        }
    }

    /// Draws a horizontal dashed line from `x0` to `x1` at row `y`.
    public mutating func drawDashedHorizontal(y: Int, from x0: Int, to x1: Int, color: RGB, dash: Int = 4) {
        guard x0 <= x1 else { return }
        for x in x0...x1 where ((x - x0) / dash) % 2 == 0 { plot(x, y, color) }
    }

    // MARK: images

    /// How `blit` resamples.
    public enum Interpolation: Sendable { case nearest, bilinear }

    /// Draws `image` scaled into the rectangle `[x, x+w) × [y, y+h)` (clipped to the canvas).
    public mutating func blit(_ image: Canvas, x: Int, y: Int, width w: Int? = nil, height h: Int? = nil,
                              interpolation: Interpolation = .nearest) {
        let dw = w ?? image.width, dh = h ?? image.height
        guard dw > 0, dh > 0, image.width > 0, image.height > 0 else { return }
        let sw = image.width, sh = image.height
        let sx = Double(sw) / Double(dw), sy = Double(sh) / Double(dh)
        let W = width, H = height
        let x0 = Swift.max(0, x), x1 = Swift.min(W, x + dw)
        let y0 = Swift.max(0, y), y1 = Swift.min(H, y + dh)
        guard x0 < x1, y0 < y1 else { return }
        image.pixels.withUnsafeBufferPointer { src in
            pixels.withUnsafeMutableBufferPointer { dst in
                for yy in y0..<y1 {
                    let v = yy - y
                    for xx in x0..<x1 {
                        let u = xx - x
                        let o = 3 * (yy * W + xx)
                        switch interpolation {
                        case .nearest:
                            let su = Swift.min(sw - 1, Int(Double(u) * sx + sx / 2))
                            let sv = Swift.min(sh - 1, Int(Double(v) * sy + sy / 2))
                            let i = 3 * (sv * sw + su)
                            dst[o] = src[i]; dst[o + 1] = src[i + 1]; dst[o + 2] = src[i + 2]
                        case .bilinear:
                            let fx = Swift.max(0, (Double(u) + 0.5) * sx - 0.5)
                            let fy = Swift.max(0, (Double(v) + 0.5) * sy - 0.5)
                            let ix = Swift.min(sw - 1, Int(fx)), iy = Swift.min(sh - 1, Int(fy))
                            let jx = Swift.min(sw - 1, ix + 1), jy = Swift.min(sh - 1, iy + 1)
                            let ax = fx - Double(ix), ay = fy - Double(iy)
                            for c in 0..<3 {
                                let a = Double(src[3 * (iy * sw + ix) + c]), b = Double(src[3 * (iy * sw + jx) + c])
                                let d = Double(src[3 * (jy * sw + ix) + c]), e = Double(src[3 * (jy * sw + jx) + c])
                                let top = a + (b - a) * ax, bottom = d + (e - d) * ax
                                dst[o + c] = UInt8(Swift.min(255, Swift.max(0, (top + (bottom - top) * ay).rounded())))
                            }
                        }
                    }
                }
            }
        }
    }

    /// This canvas scaled to `w × h`.
    public func scaled(width w: Int, height h: Int, interpolation: Interpolation = .nearest) -> Canvas {
        var out = Canvas(width: w, height: h)
        out.blit(self, x: 0, y: 0, width: w, height: h, interpolation: interpolation)
        return out
    }

    // MARK: text

    /// Draws `text` with its top-left corner at `(x, y)`; each font pixel becomes a
    /// `scale × scale` block. Returns the drawn width.
    @discardableResult
    public mutating func drawText(_ text: String, x: Int, y: Int, color: RGB = .black, scale: Int = 1) -> Int {
        BitmapFont.draw(text, on: &self, x: x, y: y, color: color, scale: scale)
    }

    /// Draws `text` horizontally centred on `cx` with its top at `y`.
    public mutating func drawText(_ text: String, centeredAt cx: Int, y: Int, color: RGB = .black, scale: Int = 1) {
        let w = BitmapFont.width(of: text, scale: scale)
        drawText(text, x: cx - w / 2, y: y, color: color, scale: scale)
    }

    /// Draws `text` rotated 90° counter-clockwise (reading bottom to top), its bounding box's
    /// top-left at `(x, y)` (box: `lineHeight × width(of:)`).
    public mutating func drawVerticalText(_ text: String, x: Int, y: Int, color: RGB = .black, scale: Int = 1) {
        let w = BitmapFont.width(of: text, scale: scale)
        let h = BitmapFont.glyphHeight * scale
        guard w > 0 else { return }
        var strip = Canvas(width: w, height: h, background: .white)
        var mask = [Bool](repeating: false, count: w * h)
        strip.drawText(text, x: 0, y: 0, color: .black, scale: scale)
        for i in 0..<(w * h) where strip.pixels[3 * i] == 0 { mask[i] = true }
        // (u, v) in the strip goes to (x + v, y + w − 1 − u).
        for v in 0..<h {
            for u in 0..<w where mask[v * w + u] { plot(x + v, y + w - 1 - u, color) }
        }
    }

    // MARK: composition

    /// Stacks panels left to right, each with its title centred above it, on a white canvas.
    /// Panels keep their sizes; `gap` pixels separate them and surround the whole.
    public static func sideBySide(_ panels: [(title: String, image: Canvas)], gap: Int = 8,
                                  titleScale: Int = 1, background: RGB = .white) -> Canvas {
        let titleH = panels.contains { !$0.title.isEmpty } ? BitmapFont.lineHeight * titleScale + 4 : 0
        let maxH = panels.map { $0.image.height }.max() ?? 0
        let totalW = panels.reduce(gap) { $0 + $1.image.width + gap }
        var out = Canvas(width: totalW, height: gap + titleH + maxH + gap, background: background)
        var x = gap
        for p in panels {
            if !p.title.isEmpty {
                out.drawText(fitted(p.title, width: p.image.width, scale: titleScale),
                             centeredAt: x + p.image.width / 2, y: gap, color: .black, scale: titleScale)
            }
            out.blit(p.image, x: x, y: gap + titleH)
            x += p.image.width + gap
        }
        return out
    }

    /// Stacks canvases top to bottom (left-aligned), separated by `gap` pixels.
    public static func stacked(_ rows: [Canvas], gap: Int = 0, background: RGB = .white) -> Canvas {
        let w = rows.map { $0.width }.max() ?? 0
        let h = rows.reduce(0) { $0 + $1.height } + gap * Swift.max(0, rows.count - 1)
        var out = Canvas(width: w, height: h, background: background)
        var y = 0
        for r in rows {
            out.blit(r, x: 0, y: y)
            y += r.height + gap
        }
        return out
    }

    /// `text` shortened with a trailing "..." so that it fits `width` pixels.
    public static func fitted(_ text: String, width: Int, scale: Int) -> String {
        if BitmapFont.width(of: text, scale: scale) <= width { return text }
        var s = text
        while !s.isEmpty && BitmapFont.width(of: s + "..", scale: scale) > width { s.removeLast() }
        return s + ".."
    }
}
