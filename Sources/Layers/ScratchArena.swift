import Numerics

/// Named work buffers lent to layers, shared by every layer that holds the same arena
/// (llm.c's activation arena, by name): the frozen backbone's blocks borrow their backward
/// work buffers, the forward values only their weight gradients would read, and (in
/// recompute / inference mode) even their caches from one arena, so that one block's worth
/// of memory serves all blocks and is allocated once, not every step.
///
///     tensor(key, shape)   a [shape] view of the key's buffer, grown when too small
///     zeros(key, shape)    the same, zero-filled
///     copy(key, of: t)     the same, holding t's elements
///
/// A buffer's contents live until the next user of the same key writes it; two buffers in
/// use at the same time must have different keys. Not thread-safe (call from the driving
/// thread).
public final class ScratchArena {
    private var buffers: [String: Tensor] = [:]

    public init() {}

    /// A tensor of `shape` backed by the buffer named `key` (allocated, zero-filled, on
    /// first use and when it must grow; otherwise the same storage every call).
    public func tensor(_ key: String, _ shape: [Int]) -> Tensor {
        let n = Tensor.elementCount(shape)
        if let t = buffers[key], t.count >= n {
            return t.count == n ? t.reshaped(shape) : t.rows(0..<n).reshaped(shape)
        }
        let t = Tensor(zeros: [n])
        buffers[key] = t
        return t.reshaped(shape)
    }

    /// As `tensor`, zero-filled: the reused stand-in for a fresh `Tensor(zeros:)` that an
    /// accumulating backward adds into.
    public func zeros(_ key: String, _ shape: [Int]) -> Tensor {
        let t = tensor(key, shape)
        t.zero()
        return t
    }

    /// As `tensor`, holding a copy of `source` (the reused stand-in for `clone()`).
    public func copy(_ key: String, of source: Tensor) -> Tensor {
        let t = tensor(key, source.shape)
        t.copy(from: source)
        return t
    }

    /// Frees every buffer (views handed out stay valid while they are held).
    public func release() { buffers = [:] }

    /// Floats held, over all buffers.
    public var elementCount: Int { buffers.values.reduce(0) { $0 + $1.count } }
}
