import Foundation
import ImageIO
import Numerics
import Visualization
import XCTest

final class ChartTests: XCTestCase {
    func testLineChartHasRequestedSizeAndDrawsEachSeriesColour() {
        let a = LineChart.Series(name: "fog", points: (0..<10).map { (Double($0) * 100, Double($0) * 0.05) }, color: RGB(255, 0, 0))
        let b = LineChart.Series(name: "night", points: (0..<10).map { (Double($0) * 100, 0.4 - Double($0) * 0.01) }, color: RGB(0, 0, 255))
        let img = LineChart(title: "mIoU", xLabel: "step", yLabel: "mIoU", series: [a, b], width: 500, height: 300).render()
        XCTAssertEqual(img.width, 500)
        XCTAssertEqual(img.height, 300)
        var colours = Set<RGB>()
        for y in 0..<img.height { for x in 0..<img.width { colours.insert(img[x, y]) } }
        XCTAssertTrue(colours.contains(RGB(255, 0, 0)))
        XCTAssertTrue(colours.contains(RGB(0, 0, 255)))
    }

    func testStackedBarsHaveSegmentHeightsProportionalToValues() {
        let chart = StackedBarChart(title: "bands", xLabel: "layer", yLabel: "fraction", categories: ["0", "1"],
                                    segments: ["low", "causal", "high"], values: [[0.25, 0.5, 0.25], [0.1, 0.1, 0.8]],
                                    colors: [RGB(255, 0, 0), RGB(0, 255, 0), RGB(0, 0, 255)], yMax: 1, width: 400, height: 300)
        let img = chart.render()
        XCTAssertEqual(img.width, 400)
        XCTAssertEqual(img.height, 300)
        // Count each colour's pixels per bar column; ratios follow the values.
        func count(_ c: RGB, columns: Range<Int>) -> Int {
            var n = 0
            for y in 0..<img.height { for x in columns where img[x, y] == c { n += 1 } }
            return n
        }
        let mid = img.width / 2
        let red0 = count(RGB(255, 0, 0), columns: 0..<mid), green0 = count(RGB(0, 255, 0), columns: 0..<mid)
        let blue1 = count(RGB(0, 0, 255), columns: mid..<img.width), red1 = count(RGB(255, 0, 0), columns: mid..<img.width)
        XCTAssertEqual(Double(green0) / Double(red0), 2, accuracy: 0.1)
        XCTAssertEqual(Double(blue1) / Double(red1), 8, accuracy: 0.6)
    }

    func testHeatMapPrintsEachValueInItsCellAndGreysMissingCells() {
        let values: [[Double?]] = [[0.4123, 0.3871], [nil, 0.3456]]
        let map = HeatMap(title: "mIoU", rowTitle: "low", columnTitle: "high", rowLabels: ["0.1", "0.2"],
                          columnLabels: ["0.5", "0.7"], values: values, cellText: { String(format: "%.1f", 100 * $0) })
        XCTAssertEqual(map.cellTexts, [["41.2", "38.7"], ["-", "34.6"]])
        let img = map.render()
        let (gx, gy) = map.gridOrigin
        // The missing cell is light grey at its corner; the largest value gets viridis' top colour.
        XCTAssertEqual(img[gx + 2, gy + map.cellSize + 2], RGB.lightGray)
        XCTAssertEqual(img[gx + 2, gy + 2], ColorMap.viridis(1))
        XCTAssertEqual(img[gx + map.cellSize + 2, gy + map.cellSize + 2], ColorMap.viridis(0))
        XCTAssertGreaterThanOrEqual(img.width, gx + 2 * map.cellSize)
    }

    func testContourOfRadialFieldLiesOnTheCircle() {
        let n = 41, r0 = 12.0
        var f = [Float](repeating: 0, count: n * n)
        for y in 0..<n { for x in 0..<n { f[y * n + x] = Float(((Double(x) - 20) * (Double(x) - 20) + (Double(y) - 20) * (Double(y) - 20)).squareRoot()) } }
        let segs = Contour.isoLines(f, width: n, height: n, level: Float(r0))
        XCTAssertGreaterThan(segs.count, 40)
        for (a, b) in segs {
            for p in [a, b] {
                let r = ((p.x - 20) * (p.x - 20) + (p.y - 20) * (p.y - 20)).squareRoot()
                XCTAssertEqual(r, r0, accuracy: 0.1)
            }
        }
    }

    func testSpectrumPictureEnlargesGridAndDrawsContour() {
        let C = 4, h = 16, w = 16
        let s = Tensor(zeros: [C, h, w])
        for c in 0..<C { for u in 0..<h { for v in 0..<w { s[c, u, v] = Float(c + 1) / Float(1 + u * u + v * v) } } }
        var mask = [Float](repeating: 0, count: h * w)
        for u in 0..<h { for v in 0..<w {
            let rho = (Double(u * u + v * v)).squareRoot() / 16
            mask[u * w + v] = Float(exp(-rho * rho / (2 * 0.49)) * (1 - exp(-rho * rho / (2 * 0.04))))
        } }
        let img = SpectrumPicture.render(spectrum: s, mask: mask, size: 256, contourColor: RGB(255, 0, 255))
        XCTAssertEqual(img.width, 256)
        XCTAssertEqual(img.height, 256)
        let magenta = img.pixels.indices.filter { $0 % 3 == 0 && img.pixels[$0] == 255 && img.pixels[$0 + 1] == 0 && img.pixels[$0 + 2] == 255 }
        XCTAssertGreaterThan(magenta.count, 100)
        // log|F| decreases away from (0, 0): the top-left block is brighter than the bottom-right.
        XCTAssertGreaterThan(img[2, 2].luminance, img[250, 250].luminance)
    }
}
