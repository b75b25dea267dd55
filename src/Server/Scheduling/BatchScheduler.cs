using System.Globalization;
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using System.Threading.Channels;
using Kangaroo.Native.Chat;
using Kangaroo.Native.Engine;
using Kangaroo.Native.Engine.Kangaroo;
using Kangaroo.Native.Loader;
using Kangaroo.Native.Engine.Decoding;
using Decoder = Kangaroo.Native.Engine.Decoding.Decoder;

namespace Kangaroo.Native.Server.Scheduling;

/// <summary>
/// Continuous batching: up to as many generations as the model has sequence slots decode together, each
/// step one pass over the next row of every running generation (a waiting request's prompt joins in
/// chunks between steps); requests beyond that wait in a bounded queue, and a finished or cancelled
/// generation leaves and frees its slot at once. Rows never change each other's results, so a reply is
/// the same whatever runs beside it. With one generation running the decoder steps it as it would alone
/// (<c>auto</c> speculating where that pays); with several, a self-speculative decoder speculates for one
/// at a time only where the measured costs say that beats one batched plain step
/// (<see cref="SpeculationController.SpeculatesBeside"/>), and a fixed Kangaroo decoder always does.
/// A worker thread owns the model. Text is cut at stop sequences by <see cref="ReplyText"/>, as
/// <see cref="KangarooChatClient"/> cuts it. The scheduler owns the decoder and disposes it; the
/// session stays the caller's.
/// </summary>
public sealed class BatchScheduler : IGenerationScheduler
{
    private readonly Decoder _decoder;
    private readonly AutoregressiveBatch _batch;
    private readonly ModelTokenizer _tokenizer;
    private readonly int _capacity;
    private readonly int _slots;
    private readonly LinkedList<Job> _queue = new();
    private readonly List<Job> _running = [];
    private readonly Lock _lock = new();
    private readonly SemaphoreSlim _signal = new(0);
    private readonly CancellationTokenSource _stopping = new();
    private readonly Thread _worker;
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private string _mode = "";
    private bool _disposed;

    /// <summary>Starts the worker thread that decodes <paramref name="session"/>'s model in as many slots as its
    /// KV cache holds.</summary>
    /// <param name="session">the model and tokenizer to serve; stays the caller's.</param>
    /// <param name="decoder">a decoder of <paramref name="session"/>'s model, used by this scheduler only.</param>
    /// <param name="queueCapacity">admitted requests that may wait while the slots are busy.</param>
    /// <exception cref="ArgumentException">The decoder is of another model, or the session has no tokenizer.</exception>
    public BatchScheduler(InferenceSession session, Decoder decoder, int queueCapacity)
    {
        ArgumentNullException.ThrowIfNull(session);
        ArgumentNullException.ThrowIfNull(decoder);
        ArgumentOutOfRangeException.ThrowIfNegative(queueCapacity);
        if (decoder.Model != session.Model) throw new ArgumentException("the decoder is not of the session's model");
        _tokenizer = session.Tokenizer ?? throw new ArgumentException($"{session.ModelPath}: the server needs the model's tokenizer");
        _decoder = decoder;
        _slots = session.Model.Cache.Slots;
        _batch = new AutoregressiveBatch(session.Model, Math.Max(_slots, LlamaModel.MaxBlockRows));
        _capacity = queueCapacity;
        _mode = Describe(decoder);
        _worker = new Thread(Work) { IsBackground = true, Name = "kangaroo generation" };
        _worker.Start();
    }

    /// <summary>Tests: a pause after each step, standing in for a model slow enough to be caught mid-generation.</summary>
    internal TimeSpan TokenDelay { get; init; }

    /// <inheritdoc/>
    public SchedulerStatus Status
    {
        get
        {
            lock (_lock) return new SchedulerStatus(_decoder.Name, _mode, _slots, _running.Count, _queue.Count, _capacity);
        }
    }

    /// <summary>What a decoder does alone: no speculation, its fixed settings, or the auto decoder's current plan.</summary>
    public static string Describe(Decoder decoder) => decoder switch
    {
        SelfSpeculativeDecoder { Controller: { } auto } => auto.Plan.Describe(),
        SelfSpeculativeDecoder { Options: var o } => string.Create(CultureInfo.InvariantCulture, $"speculate from exit layer {o.ExitLayer} with gamma {o.DraftSteps}, eta {o.Threshold:0.0#}"),
        _ => "none",
    };

    /// <inheritdoc/>
    public IAsyncEnumerable<GenerationUpdate> Submit(GenerationRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        Validate(request);
        Job job;
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_queue.Count >= _capacity) throw new SchedulerFullException(_capacity);
            job = new Job(request, CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stopping.Token));
            job.Node = _queue.AddLast(job);
        }
        job.Source.Token.Register(() => Withdraw(job)); // a request cancelled while waiting leaves the queue at once
        _signal.Release();
        return Read(job);
    }

    private void Validate(GenerationRequest request)
    {
        var model = _decoder.Model;
        if (request.Prompt.Count == 0) throw new ArgumentException("the prompt is empty (it needs at least the BOS token)");
        if (request.Prompt.Count > model.Context) throw new ArgumentException($"the prompt is {request.Prompt.Count} tokens but the context is {model.Context} positions");
        foreach (var id in request.Prompt)
            if ((uint)id >= (uint)model.Config.VocabSize) throw new ArgumentException($"prompt token id {id} is outside the model's vocabulary of {model.Config.VocabSize}");
        ArgumentOutOfRangeException.ThrowIfNegative(request.MaxTokens);
        request.Sampling.Validate();
        ArgumentNullException.ThrowIfNull(request.StopSequences);
    }

    /// <summary>The updates of an admitted job; ending the enumeration early cancels the job and waits until the
    /// worker has let it go, so the slot is free when the enumeration is disposed.</summary>
    private static async IAsyncEnumerable<GenerationUpdate> Read(Job job, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        try
        {
            using var stop = cancellationToken.Register(job.Source.Cancel);
            await foreach (var update in job.Updates.Reader.ReadAllAsync(job.Source.Token)) yield return update;
            if (job.Failure is { } failure) ExceptionDispatchInfo.Throw(failure);
            job.Source.Token.ThrowIfCancellationRequested(); // withdrawn from the queue: no updates, no finish
        }
        finally
        {
            await job.Source.CancelAsync();
            await job.Done.Task;
            job.Source.Dispose();
        }
    }

    private void Withdraw(Job job)
    {
        lock (_lock)
        {
            if (job.Node is null) return; // running or done: the worker sees the cancellation before the next step
            _queue.Remove(job.Node);
            job.Node = null;
        }
        job.End(null);
    }

    private void Work()
    {
        try
        {
            while (true)
            {
                Admit();
                if (_running.Count == 0)
                {
                    lock (_lock)
                        if (_disposed && _queue.Count == 0) return;
                    _signal.Wait();
                    continue;
                }
                foreach (var job in _running.Where(j => j.Source.IsCancellationRequested).ToList()) Finish(job, null);
                if (_running.Count == 0) continue;
                try
                {
                    Step();
                }
                catch (Exception e)
                {
                    foreach (var job in _running.ToList()) Finish(job, e);
                    continue;
                }
                foreach (var job in _running.ToList()) Emit(job);
                if (TokenDelay > TimeSpan.Zero) Thread.Sleep(TokenDelay);
            }
        }
        finally
        {
            foreach (var job in _running.ToList()) Finish(job, null);
            _stopped.TrySetResult();
        }
    }

    /// <summary>Starts waiting requests while slots are free.</summary>
    private void Admit()
    {
        while (true)
        {
            Job? job;
            lock (_lock)
            {
                if (_running.Count >= _slots || _queue.First is null) return;
                job = _queue.First.Value;
                _queue.RemoveFirst();
                job.Node = null;
                _running.Add(job);
            }
            try
            {
                var request = job.Request;
                job.Reply = new ReplyText(_tokenizer, _decoder.Model.Config.EosIds, request.StopSequences);
                job.Generation = _decoder.Start(request.Prompt, request.MaxTokens, request.Sampling, reuseCache: true);
            }
            catch (Exception e)
            {
                Finish(job, e);
            }
        }
    }

    /// <summary>One step of every running generation: each speculates in turn, or all take one batched plain step.</summary>
    private void Step()
    {
        var generations = _running.Select(j => j.Generation!).ToList();
        var speculate = _decoder switch
        {
            SelfSpeculativeDecoder { Controller: { } auto } => auto.SpeculatesBeside(generations.Count),
            SelfSpeculativeDecoder => true,
            _ => false,
        };
        var mode = speculate || generations.Count == 1 ? Describe(_decoder)
            : string.Create(CultureInfo.InvariantCulture, $"batched plain decoding of {generations.Count} sequences");
        lock (_lock) _mode = mode;
        if (speculate)
            foreach (var g in generations) _decoder.Step(g);
        else _batch.Step(generations);
    }

    /// <summary>Gives out what the last step committed; finishes a generation that ended.</summary>
    private void Emit(Job job)
    {
        var (g, reply) = (job.Generation!, job.Reply!);
        foreach (var id in g.Committed)
        {
            job.Generated++;
            if (reply.Append(id) is { Length: > 0 } text) job.Updates.Writer.TryWrite(new GenerationText(text));
            if (reply.Stopped) break;
        }
        if (!reply.Stopped && !g.Finished) return;
        if (reply.Finish() is { Length: > 0 } rest) job.Updates.Writer.TryWrite(new GenerationText(rest));
        job.Updates.Writer.TryWrite(new GenerationFinished(reply.Stopped ? FinishReason.Stop : FinishReason.Length, job.Request.Prompt.Count, job.Generated, g.Stats.ReusedTokens));
        Finish(job, null);
    }

    /// <summary>Ends a running job: its generation gives its slot back, its reader is released.</summary>
    private void Finish(Job job, Exception? failure)
    {
        job.Generation?.Dispose();
        lock (_lock) _running.Remove(job);
        job.End(failure);
    }

    /// <summary>Stops admitting requests, cancels those still waiting or running, and waits for the worker to
    /// end; then disposes the decoder. The HTTP server should have drained its requests before.</summary>
    public async ValueTask DisposeAsync()
    {
        lock (_lock)
        {
            if (_disposed) return;
            _disposed = true;
        }
        await _stopping.CancelAsync();
        _signal.Release();
        await _stopped.Task;
        _batch.Dispose();
        _decoder.Dispose();
    }

    private sealed class Job(GenerationRequest request, CancellationTokenSource source)
    {
        public GenerationRequest Request { get; } = request;
        public CancellationTokenSource Source { get; } = source;

        /// <summary>Unbounded: a client that reads slowly never holds up the worker (a reply is at most its token limit).</summary>
        public Channel<GenerationUpdate> Updates { get; } = Channel.CreateUnbounded<GenerationUpdate>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });

        public LinkedListNode<Job>? Node { get; set; }
        public Generation? Generation { get; set; }
        public ReplyText? Reply { get; set; }
        public int Generated { get; set; }
        public Exception? Failure { get; private set; }

        /// <summary>Completed when the worker has let the job go (or it left the queue unrun).</summary>
        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void End(Exception? failure)
        {
            Failure = failure;
            Updates.Writer.TryComplete();
            Done.TrySetResult();
        }
    }
}
