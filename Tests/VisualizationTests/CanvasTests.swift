import ImageIO
import Visualization
import XCTest

final class CanvasTests: XCTestCase {
    func testFillRectClipsToCanvasAndPaintsExactlyItsPixels() {
        var c = Canvas(width: 10, height: 6, background: .white)
        c.fillRect(x: 7, y: 4, width: 10, height: 10, color: .red)
        var red = 0
        for y in 0..<6 { for x in 0..<10 where c[x, y] == .red { red += 1; XCTAssert(x >= 7 && y >= 4) } }
        XCTAssertEqual(red, 3 * 2)
        XCTAssertEqual(c.pixels.count, 10 * 6 * 3)
    }

    func testThickLineCoversItsWidthAndNothingFarAway() {
        var c = Canvas(width: 40, height: 40, background: .white)
        c.drawLine(from: (5, 20), to: (35, 20), color: .black, thickness: 4)
        // Pixel centres within 1.5 px of y = 20 are fully inked; 4 px away untouched.
        for x in 8..<32 {
            XCTAssertEqual(c[x, 19], .black)
            XCTAssertEqual(c[x, 20], .black)
            XCTAssertEqual(c[x, 15], .white)
            XCTAssertEqual(c[x, 24], .white)
        }
        XCTAssertEqual(c[1, 20], .white)
    }

    func testNearestBlitReplicatesSourcePixelsIntoBlocks() {
        var src = Canvas(width: 2, height: 2, background: .black)
        src[1, 0] = .red
        src[0, 1] = .white
        let big = src.scaled(width: 8, height: 6)
        XCTAssertEqual(big.width, 8)
        XCTAssertEqual(big.height, 6)
        XCTAssertEqual(big[0, 0], .black)
        XCTAssertEqual(big[7, 2], .red)
        XCTAssertEqual(big[3, 3], .white)
        XCTAssertEqual(big[4, 5], .black)
    }

    func testBilinearBlitInterpolatesBetweenNeighbours() {
        let src = Canvas(width: 2, height: 1, pixels: [0, 0, 0, 200, 200, 200])
        let big = src.scaled(width: 4, height: 1, interpolation: .bilinear)
        // align_corners=false: x = 0.5·(u + ½) − ½ → −0.25 (clamped 0), 0.25, 0.75, 1.25 (clamped).
        XCTAssertEqual(big.pixels.stride(3), [0, 50, 150, 200])
    }

    func testSideBySideSizeIsSumOfPanelsPlusGapsAndTitleRow() {
        let a = Canvas(width: 30, height: 20), b = Canvas(width: 50, height: 40)
        let s = Canvas.sideBySide([("a", a), ("b", b)], gap: 5)
        XCTAssertEqual(s.width, 5 + 30 + 5 + 50 + 5)
        XCTAssertEqual(s.height, 5 + (BitmapFont.lineHeight + 4) + 40 + 5)
    }

    func testFontHasDistinctGlyphsForPrintableASCII() {
        var seen: [[UInt8]: Character] = [:]
        for a in UInt8(33)...UInt8(126) {
            let ch = Character(UnicodeScalar(a))
            let rows = Array(BitmapFont.rows(of: ch))
            XCTAssertEqual(rows.count, 8)
            XCTAssertTrue(rows.contains { $0 != 0 }, "glyph \(ch) is empty")
            XCTAssertNil(seen[rows], "glyph \(ch) equals glyph \(seen[rows] ?? " ")")
            seen[rows] = ch
        }
        XCTAssertEqual(Array(BitmapFont.rows(of: "€")), Array(BitmapFont.rows(of: "?")))
    }

    func testTextInksPixelsOnlyInsideItsBox() {
        var c = Canvas(width: 80, height: 20, background: .white)
        let w = c.drawText("mIoU 0.5", x: 3, y: 4, color: .black, scale: 1)
        XCTAssertEqual(w, BitmapFont.width(of: "mIoU 0.5"))
        var inked = 0
        for y in 0..<20 {
            for x in 0..<80 where c[x, y] != .white {
                inked += 1
                XCTAssert(x >= 3 && x < 3 + w && y >= 4 && y < 12, "ink at (\(x), \(y))")
            }
        }
        XCTAssertGreaterThan(inked, 40)
    }

    func testViridisEndsAndMonotoneLuminance() {
        XCTAssertEqual(ColorMap.viridis(0), RGB(68, 1, 84))
        XCTAssertEqual(ColorMap.viridis(1), RGB(253, 231, 37))
        XCTAssertEqual(ColorMap.viridis(-3), ColorMap.viridis(0))
        var last = -1.0
        for k in 0...50 {
            let l = ColorMap.viridis(Double(k) / 50).luminance
            XCTAssertGreaterThan(l, last - 1e-9)
            last = l
        }
        XCTAssertEqual(ColorMap.viridis(.nan), ColorMap.viridis.missing)
    }

    func testNiceTicksCoverRangeWithRoundSteps() {
        let r = Axis.niceRange(lo: 0.013, hi: 0.87, maxTicks: 6)
        XCTAssertLessThanOrEqual(r.lo, 0.013)
        XCTAssertGreaterThanOrEqual(r.hi, 0.87)
        XCTAssertEqual(r.ticks.first!, 0, accuracy: 1e-12)
        XCTAssertEqual(r.ticks[1] - r.ticks[0], 0.2, accuracy: 1e-12)
        XCTAssertLessThanOrEqual(r.ticks.count, 7)
        XCTAssertEqual(Axis.label(0.4, step: 0.2), "0.4")
        XCTAssertEqual(Axis.label(2000, step: 500), "2000")
        XCTAssertEqual(Axis.label(0.25, step: 0.25), "0.25")
        XCTAssertEqual(Axis.label(1e-4, step: 2e-5), "1.0e-4")
    }
}

extension Array where Element == UInt8 {
    /// Every `n`-th element (the red channel of RGB bytes for n = 3).
    func stride(_ n: Int) -> [UInt8] { Swift.stride(from: 0, to: count, by: n).map { self[$0] } }
}
