using Kangaroo.Native.Engine;

namespace Kangaroo.Native.Server.Scheduling;

/// <summary>
/// Runs the server's generations on its model: requests are admitted into a bounded queue and decoded in
/// slots. The HTTP layer knows only this interface, so a scheduler that decodes several sequences in one
/// forward pass replaces <see cref="BatchScheduler"/> without touching it.
/// </summary>
public interface IGenerationScheduler : IAsyncDisposable
{
    /// <summary>Admits <paramref name="request"/> now or throws <see cref="SchedulerFullException"/> (nothing is
    /// queued then); the updates come as the result is enumerated: text pieces, then one
    /// <see cref="GenerationFinished"/>. Cancelling <paramref name="cancellationToken"/>, or disposing the
    /// enumerator before the end, cancels the generation: a waiting request leaves the queue at once, a
    /// running one frees its slot within one decoding step. A generation that fails throws from the
    /// enumeration. After <see cref="IAsyncDisposable.DisposeAsync"/>, throws <see cref="ObjectDisposedException"/>.</summary>
    IAsyncEnumerable<GenerationUpdate> Submit(GenerationRequest request, CancellationToken cancellationToken = default);

    /// <summary>What the scheduler runs and is doing now, for <c>/health</c>.</summary>
    SchedulerStatus Status { get; }
}

/// <summary>One generation: the prompt's token ids (BOS included, at most the context), at most
/// <paramref name="MaxTokens"/> new tokens (clamped to what fits the context, as <c>generate</c> does), and
/// texts that end the reply before them.</summary>
public sealed record GenerationRequest(IReadOnlyList<int> Prompt, int MaxTokens, SamplingOptions Sampling, IReadOnlyList<string> StopSequences);

/// <summary>What a generation gives out: <see cref="GenerationText"/> pieces, then <see cref="GenerationFinished"/>.</summary>
public abstract record GenerationUpdate;

/// <summary>A piece of the reply's text (never empty).</summary>
public sealed record GenerationText(string Text) : GenerationUpdate;

/// <summary>The last update: why the generation ended and the tokens it took. <paramref name="CompletionTokens"/>
/// counts every token generated, the stop token or the one that completed a stop sequence included;
/// <paramref name="CachedPromptTokens"/> are prompt positions kept in the KV cache from an earlier generation.</summary>
public sealed record GenerationFinished(FinishReason Reason, int PromptTokens, int CompletionTokens, int CachedPromptTokens) : GenerationUpdate;

/// <summary>Why a generation ended.</summary>
public enum FinishReason
{
    /// <summary>The model's stop token or a stop sequence.</summary>
    Stop,

    /// <summary>The request's token limit, or the end of the context.</summary>
    Length,
}

/// <summary>What a scheduler runs and is doing now (<see cref="IGenerationScheduler.Status"/>).</summary>
/// <param name="Decoder">the decoder's name (autoregressive, kangaroo, early-exit or auto).</param>
/// <param name="Speculation">what the decoder does now: "none", the fixed draft settings, or the auto decoder's plan.</param>
/// <param name="Slots">sequences decoded at once.</param>
/// <param name="Busy">slots decoding now.</param>
/// <param name="Waiting">admitted requests waiting for a slot.</param>
/// <param name="QueueCapacity">requests that may wait; more are refused.</param>
public sealed record SchedulerStatus(string Decoder, string Speculation, int Slots, int Busy, int Waiting, int QueueCapacity);

/// <summary>The queue is full: the request was not admitted; it may be sent again later.</summary>
public sealed class SchedulerFullException(int capacity)
    : Exception($"the server is busy: {capacity} requests are already waiting; try again shortly")
{
    /// <summary>How many requests may wait; this many were waiting.</summary>
    public int Capacity { get; } = capacity;
}
