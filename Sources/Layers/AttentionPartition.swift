import Numerics

/// How attention cuts each (batch, head) pair into query blocks: a function of the pair
/// count, the token count T and the partition width W (`ProductTiling.width`), never of the
/// thread count, so the bits stay the same for any number of workers at one W.
///
///     blocks = 1                                        if W ≤ ProductTiling.defaultWidth or pairs ≥ W
///            = min(⌈W / pairs⌉, max(1, ⌊T / 64⌋))       otherwise
///     rowsPerBlock = ⌈T / blocks⌉ rounded up to a multiple of 8; blocks counts only the
///                    non-empty ones (⌈T / rowsPerBlock⌉)
///
/// Why: one work item per pair leaves workers idle once the pairs are fewer than the
/// workers — ViT-L/16 at 512² with batch 1 has 16 pairs, so 64 threads ran attention at
/// most 16 wide. A run that asks for a wide partition (W > pairs) gets about W items, with
/// each block's rows of the scores, softmax and products independent of the others; only
/// dk and dv sum over the query rows, so the backward writes one partial per block and
/// adds them in block order. At least 64 query rows per block keep each product large
/// enough that repacking k and v per block (T·D floats against rows·T·D multiply-adds)
/// stays a few per cent. The default width keeps one block, i.e. the default run's bits.
public struct AttentionPartition: Equatable, Sendable {
    /// Query blocks per pair (1: the pair runs whole).
    public let blocks: Int
    /// Query rows of every block but possibly the last.
    public let rowsPerBlock: Int

    /// The fewest query rows a block is cut to (before rounding to a multiple of 8).
    public static let minimumRows = 64

    public init(pairs: Int, tokens T: Int, width W: Int = ProductTiling.width) {
        var want = 1
        if W > ProductTiling.defaultWidth && pairs < W && T > 0 {
            want = Swift.min((W + pairs - 1) / Swift.max(pairs, 1), Swift.max(1, T / AttentionPartition.minimumRows))
        }
        if want <= 1 {
            blocks = 1
            rowsPerBlock = T
            return
        }
        rowsPerBlock = ((T + want - 1) / want + 7) / 8 * 8
        blocks = (T + rowsPerBlock - 1) / rowsPerBlock
    }

    /// The query rows of block `i`.
    @inline(__always)
    public func rows(_ i: Int, tokens T: Int) -> Range<Int> {
        let r0 = i * rowsPerBlock
        return r0..<Swift.min(T, r0 + rowsPerBlock)
    }
}
