/// The typed collective operations, built on the `Communicator` primitives.
///
///     allReduceSum(x):   x ← Σ_p x_p            (Float, Double, Int64 buffers, tensors)
///     allReduceMean(x):  x ← (1/P) Σ_p x_p      (Float buffers and tensors)
///     broadcast(x):      x ← x_root
///     allGather(v):      [v_0, v_1, …, v_{P−1}]
import Foundation
import Numerics

extension Communicator {
    // MARK: - All-reduce (in place)

    /// Sums `buffer` across ranks, in place.
    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        allReduceRaw(base, count: buffer.count, element: .float32, operation: .sum)
    }

    /// Averages `buffer` across ranks, in place (sum, then × 1/size).
    public func allReduceMean(_ buffer: UnsafeMutableBufferPointer<Float>) {
        allReduceSum(buffer)
        if size > 1 {
            let scale = 1 / Float(size)
            for i in buffer.indices { buffer[i] *= scale }
        }
    }

    /// Sums `tensor`'s elements across ranks, in place.
    public func allReduceSum(_ tensor: Tensor) { allReduceSum(tensor.buffer) }

    /// Averages `tensor`'s elements across ranks, in place.
    public func allReduceMean(_ tensor: Tensor) { allReduceMean(tensor.buffer) }

    /// Sums `values` across ranks, in place.
    public func allReduceSum(_ values: inout [Float]) {
        values.withUnsafeMutableBufferPointer { allReduceSum($0) }
    }

    /// Averages `values` across ranks, in place.
    public func allReduceMean(_ values: inout [Float]) {
        values.withUnsafeMutableBufferPointer { allReduceMean($0) }
    }

    /// Sums `buffer` across ranks, in place.
    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        allReduceRaw(base, count: buffer.count, element: .float64, operation: .sum)
    }

    /// Sums `values` across ranks, in place.
    public func allReduceSum(_ values: inout [Double]) {
        values.withUnsafeMutableBufferPointer { allReduceSum($0) }
    }

    /// Sums `buffer` across ranks, in place (e.g. confusion matrices).
    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Int64>) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        allReduceRaw(base, count: buffer.count, element: .int64, operation: .sum)
    }

    /// Sums `values` across ranks, in place.
    public func allReduceSum(_ values: inout [Int64]) {
        values.withUnsafeMutableBufferPointer { allReduceSum($0) }
    }

    /// The sum of `value` over ranks.
    public func allReduceSum(_ value: Double) -> Double {
        var v = value
        allReduceRaw(&v, count: 1, element: .float64, operation: .sum)
        return v
    }

    /// The sum of `value` over ranks.
    public func allReduceSum(_ value: Int64) -> Int64 {
        var v = value
        allReduceRaw(&v, count: 1, element: .int64, operation: .sum)
        return v
    }

    /// The largest `value` over ranks.
    public func allReduceMax(_ value: Double) -> Double {
        var v = value
        allReduceRaw(&v, count: 1, element: .float64, operation: .max)
        return v
    }

    /// The largest `value` over ranks (e.g. "did any rank see a non-finite loss": 0/1).
    public func allReduceMax(_ value: Int64) -> Int64 {
        var v = value
        allReduceRaw(&v, count: 1, element: .int64, operation: .max)
        return v
    }

    /// The smallest `value` over ranks.
    public func allReduceMin(_ value: Double) -> Double {
        var v = value
        allReduceRaw(&v, count: 1, element: .float64, operation: .min)
        return v
    }

    /// Whether `flag` is true on any rank.
    public func any(_ flag: Bool) -> Bool { allReduceMax(flag ? Int64(1) : 0) != 0 }

    // MARK: - Broadcast

    /// `root`'s value on every rank.
    public func broadcast(_ value: Float, root: Int = 0) -> Float {
        var v = value
        broadcastRaw(&v, count: 1, element: .float32, root: root)
        return v
    }

    /// `root`'s value on every rank.
    public func broadcast(_ value: Double, root: Int = 0) -> Double {
        var v = value
        broadcastRaw(&v, count: 1, element: .float64, root: root)
        return v
    }

    /// `root`'s value on every rank.
    public func broadcast(_ value: Int64, root: Int = 0) -> Int64 {
        var v = value
        broadcastRaw(&v, count: 1, element: .int64, root: root)
        return v
    }

    /// `root`'s value on every rank.
    public func broadcast(_ value: UInt64, root: Int = 0) -> UInt64 {
        var v = value
        broadcastRaw(&v, count: 1, element: .uint64, root: root)
        return v
    }

    /// `root`'s value on every rank.
    public func broadcast(_ value: Int, root: Int = 0) -> Int {
        Int(broadcast(Int64(value), root: root))
    }

    /// Overwrites `buffer` with `root`'s elements (every rank passes the same count).
    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int = 0) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        broadcastRaw(base, count: buffer.count, element: .float32, root: root)
    }

    /// Overwrites `tensor`'s elements with `root`'s (same shape on every rank).
    public func broadcast(_ tensor: Tensor, root: Int = 0) { broadcast(tensor.buffer, root: root) }

    /// `root`'s array on every rank (the length is sent first; other ranks' input is
    /// ignored).
    public func broadcast(_ values: [UInt64], root: Int = 0) -> [UInt64] {
        let n = broadcast(values.count, root: root)
        var out = [UInt64](repeating: 0, count: n)
        if rank == root { out = values }
        out.withUnsafeMutableBytes { raw in
            if let base = raw.baseAddress, raw.count > 0 { broadcastRaw(base, count: n, element: .uint64, root: root) }
        }
        return out
    }

    /// `root`'s array on every rank.
    public func broadcast(_ values: [Double], root: Int = 0) -> [Double] {
        let n = broadcast(values.count, root: root)
        var out = [Double](repeating: 0, count: n)
        if rank == root { out = values }
        out.withUnsafeMutableBytes { raw in
            if let base = raw.baseAddress, raw.count > 0 { broadcastRaw(base, count: n, element: .float64, root: root) }
        }
        return out
    }

    /// `root`'s bytes on every rank.
    public func broadcast(_ bytes: [UInt8], root: Int = 0) -> [UInt8] {
        let n = broadcast(bytes.count, root: root)
        var out = [UInt8](repeating: 0, count: n)
        if rank == root { out = bytes }
        out.withUnsafeMutableBytes { raw in
            if let base = raw.baseAddress, raw.count > 0 { broadcastRaw(base, count: n, element: .byte, root: root) }
        }
        return out
    }

    /// `root`'s string on every rank (e.g. the resolved config text).
    public func broadcast(_ text: String, root: Int = 0) -> String {
        String(decoding: broadcast(Array(text.utf8), root: root), as: UTF8.self)
    }

    // MARK: - All-gather

    /// Every rank's `value`, in rank order.
    public func allGather(_ value: Int64) -> [Int64] {
        var input = value
        var output = [Int64](repeating: 0, count: size)
        output.withUnsafeMutableBytes { allGatherRaw(&input, $0.baseAddress!, count: 1, element: .int64) }
        return output
    }

    /// Every rank's `value`, in rank order.
    public func allGather(_ value: Int) -> [Int] { allGather(Int64(value)).map { Int($0) } }

    /// Every rank's `value`, in rank order.
    public func allGather(_ value: Double) -> [Double] {
        var input = value
        var output = [Double](repeating: 0, count: size)
        output.withUnsafeMutableBytes { allGatherRaw(&input, $0.baseAddress!, count: 1, element: .float64) }
        return output
    }
}
