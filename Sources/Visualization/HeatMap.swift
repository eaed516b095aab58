import Foundation
import ImageIO

/// A heat map of a matrix with each cell's value printed in it (for the cut-off
/// sweep: the accuracy matrix over `filter.low` × `filter.high`).
///
/// Cell `(i, j)` (row `i` from the top, column `j` from the left) is painted with
/// `colorMap((v − lo)/(hi − lo))`, `lo`/`hi` the smallest/largest present value, and its
/// text is `cellText(v)` in black or white, whichever contrasts with the cell colour.
/// Missing cells (`nil`: a grid point not run, or not valid such as low ≥ high) are light
/// grey with "-". A colour bar on the right shows the scale.
public struct HeatMap {
    public var title: String
    public var rowTitle: String
    public var columnTitle: String
    public var rowLabels: [String]
    public var columnLabels: [String]
    /// `values[i][j]`, rows × columns; nil = missing.
    public var values: [[Double?]]
    public var colorMap: ColorMap
    /// How a value is printed in its cell.
    public var cellText: (Double) -> String
    public var cellSize: Int

    public init(title: String, rowTitle: String, columnTitle: String, rowLabels: [String], columnLabels: [String],
                values: [[Double?]], colorMap: ColorMap = .viridis, cellSize: Int = 64,
                cellText: @escaping (Double) -> String = { String(format: "%.1f", $0) }) {
        precondition(values.count == rowLabels.count && values.allSatisfy { $0.count == columnLabels.count },
                     "HeatMap: values must be rows × columns")
        self.title = title; self.rowTitle = rowTitle; self.columnTitle = columnTitle
        self.rowLabels = rowLabels; self.columnLabels = columnLabels; self.values = values
        self.colorMap = colorMap; self.cellText = cellText; self.cellSize = cellSize
    }

    /// The text printed in every cell ("-" where missing), rows × columns.
    public var cellTexts: [[String]] {
        values.map { row in row.map { $0.map(cellText) ?? "-" } }
    }

    /// The colour-scale bounds: smallest and largest present value.
    public var valueRange: (lo: Double, hi: Double)? {
        let present = values.flatMap { $0.compactMap { $0 } }.filter { $0.isFinite }
        guard let lo = present.min(), let hi = present.max() else { return nil }
        return (lo, hi)
    }

    /// Geometry of the rendered picture: the top-left of cell (0, 0).
    public var gridOrigin: (x: Int, y: Int) {
        let rowLabelW = (rowLabels.map { BitmapFont.width(of: $0) }.max() ?? 0)
        return (20 + rowLabelW + 8, 34)
    }

    public func render() -> Canvas {
        let rows = values.count, cols = columnLabels.count
        let (gx, gy) = gridOrigin
        let barX = gx + cols * cellSize + 16, barW = 14
        let range = valueRange
        let rangeLabels = range.map { [cellText($0.lo), cellText($0.hi)] } ?? []
        let width = barX + barW + 8 + (rangeLabels.map { BitmapFont.width(of: $0) }.max() ?? 0) + 12
        let height = gy + rows * cellSize + 34
        var c = Canvas(width: Swift.max(width, BitmapFont.width(of: title, scale: 2) + 16), height: height, background: .white)
        c.drawText(title, centeredAt: c.width / 2, y: 8, color: .black, scale: 2)

        let texts = cellTexts
        let textScale = texts.flatMap { $0 }.allSatisfy { BitmapFont.width(of: $0, scale: 2) <= cellSize - 6 } ? 2 : 1
        for i in 0..<rows {
            for j in 0..<cols {
                let x = gx + j * cellSize, y = gy + i * cellSize
                var color = RGB.lightGray
                if let v = values[i][j], let r = range {
                    color = colorMap(r.hi > r.lo ? (v - r.lo) / (r.hi - r.lo) : 0.5)
                }
                c.fillRect(x: x, y: y, width: cellSize, height: cellSize, color: color)
                let ink: RGB = color.luminance > 0.5 ? .black : .white
                c.drawText(texts[i][j], centeredAt: x + cellSize / 2,
                           y: y + (cellSize - BitmapFont.glyphHeight * textScale) / 2, color: ink, scale: textScale)
            }
            c.drawText(rowLabels[i], x: gx - 6 - BitmapFont.width(of: rowLabels[i]),
                       y: gy + i * cellSize + cellSize / 2 - 3, color: .black)
        }
        for j in 0..<cols {
            c.drawText(columnLabels[j], centeredAt: gx + j * cellSize + cellSize / 2, y: gy + rows * cellSize + 5, color: .black)
        }
        c.strokeRect(x: gx - 1, y: gy - 1, width: cols * cellSize + 2, height: rows * cellSize + 2, color: .darkGray)
        c.drawText(columnTitle, centeredAt: gx + cols * cellSize / 2, y: gy + rows * cellSize + 18, color: .black)
        c.drawVerticalText(rowTitle, x: 4, y: gy + rows * cellSize / 2 - BitmapFont.width(of: rowTitle) / 2, color: .black)

        // Colour bar.
        if let r = range {
            let barH = rows * cellSize
            for k in 0..<barH {
                let t = 1 - Double(k) / Double(Swift.max(1, barH - 1))
                c.fillRect(x: barX, y: gy + k, width: barW, height: 1, color: colorMap(t))
            }
            c.strokeRect(x: barX - 1, y: gy - 1, width: barW + 2, height: barH + 2, color: .darkGray)
            c.drawText(cellText(r.hi), x: barX + barW + 4, y: gy, color: .black)
            c.drawText(cellText(r.lo), x: barX + barW + 4, y: gy + barH - 7, color: .black)
        }
        return c
    }
}
