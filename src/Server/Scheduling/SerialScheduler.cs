using System.Globalization;
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using System.Threading.Channels;
using Kangaroo.Native.Chat;
using Kangaroo.Native.Engine;
using Kangaroo.Native.Engine.Kangaroo;
using Kangaroo.Native.Loader;
using Decoder = Kangaroo.Native.Engine.Decoding.Decoder;

namespace Kangaroo.Native.Server.Scheduling;

/// <summary>
/// The scheduler for an engine that runs one generation at a time per model: one slot, a worker thread that
/// takes admitted requests from a bounded queue in order and generates each with the decoder, keeping the
/// KV cache positions a prompt shares with the previous sequence (<c>reuseCache</c>). Text is cut at stop
/// sequences by <see cref="ReplyText"/>, as <see cref="KangarooChatClient"/> cuts it. The scheduler owns
/// the decoder and disposes it; the session stays the caller's.
/// </summary>
public sealed class SerialScheduler : IGenerationScheduler
{
    private readonly Decoder _decoder;
    private readonly ModelTokenizer _tokenizer;
    private readonly int _capacity;
    private readonly LinkedList<Job> _queue = new();
    private readonly Lock _lock = new();
    private readonly SemaphoreSlim _signal = new(0);
    private readonly CancellationTokenSource _stopping = new();
    private readonly Thread _worker;
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Job? _running;
    private bool _disposed;

    /// <param name="decoder">a decoder of <paramref name="session"/>'s model, used by this scheduler only.</param>
    /// <param name="queueCapacity">admitted requests that may wait while one is generated.</param>
    public SerialScheduler(InferenceSession session, Decoder decoder, int queueCapacity)
    {
        ArgumentNullException.ThrowIfNull(session);
        ArgumentNullException.ThrowIfNull(decoder);
        ArgumentOutOfRangeException.ThrowIfNegative(queueCapacity);
        if (decoder.Model != session.Model) throw new ArgumentException("the decoder is not of the session's model");
        _tokenizer = session.Tokenizer ?? throw new ArgumentException($"{session.ModelPath}: the server needs the model's tokenizer");
        _decoder = decoder;
        _capacity = queueCapacity;
        _worker = new Thread(Work) { IsBackground = true, Name = "kangaroo generation" };
        _worker.Start();
    }

    /// <summary>Tests: a pause after each token, standing in for a model slow enough to be caught mid-generation.</summary>
    internal TimeSpan TokenDelay { get; init; }

    public SchedulerStatus Status
    {
        get
        {
            lock (_lock) return new SchedulerStatus(_decoder.Name, Describe(_decoder), 1, _running is null ? 0 : 1, _queue.Count, _capacity);
        }
    }

    /// <summary>What a decoder does: no speculation, its fixed settings, or the auto decoder's current plan.</summary>
    public static string Describe(Decoder decoder) => decoder switch
    {
        SelfSpeculativeDecoder { Controller: { } auto } => auto.Plan.Describe(),
        SelfSpeculativeDecoder { Options: var o } => string.Create(CultureInfo.InvariantCulture, $"speculate from exit layer {o.ExitLayer} with gamma {o.DraftSteps}, eta {o.Threshold:0.0#}"),
        _ => "none",
    };

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
            if (job.Node is null) return; // running or done: the worker sees the cancellation within a step
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
                _signal.Wait();
                Job? job;
                lock (_lock)
                {
                    if (_queue.First is null)
                    {
                        if (_disposed) return;
                        continue; // the request this signal was for was withdrawn
                    }
                    job = _queue.First.Value;
                    _queue.RemoveFirst();
                    job.Node = null;
                    _running = job;
                }
                try
                {
                    job.End(Generate(job));
                }
                finally
                {
                    lock (_lock) _running = null;
                }
            }
        }
        finally
        {
            _stopped.TrySetResult();
        }
    }

    /// <summary>Runs one job, writing its updates; returns its failure, if any (cancellation is none).</summary>
    private Exception? Generate(Job job)
    {
        var request = job.Request;
        var token = job.Source.Token;
        try
        {
            token.ThrowIfCancellationRequested();
            var reply = new ReplyText(_tokenizer, _decoder.Model.Config.EosIds, request.StopSequences);
            var generated = 0;
            foreach (var id in _decoder.Generate(request.Prompt, request.MaxTokens, request.Sampling, token, reuseCache: true))
            {
                generated++;
                if (reply.Append(id) is { Length: > 0 } text) job.Updates.Writer.TryWrite(new GenerationText(text));
                if (reply.Stopped) break;
                if (TokenDelay > TimeSpan.Zero) Thread.Sleep(TokenDelay);
            }
            if (reply.Finish() is { Length: > 0 } rest) job.Updates.Writer.TryWrite(new GenerationText(rest));
            job.Updates.Writer.TryWrite(new GenerationFinished(reply.Stopped ? FinishReason.Stop : FinishReason.Length, request.Prompt.Count, generated, _decoder.Stats.ReusedTokens));
            return null;
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            return null; // the reader ends on its own cancellation
        }
        catch (Exception e)
        {
            return e;
        }
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
        _decoder.Dispose();
    }

    private sealed class Job(GenerationRequest request, CancellationTokenSource source)
    {
        public GenerationRequest Request { get; } = request;
        public CancellationTokenSource Source { get; } = source;

        /// <summary>Unbounded: a client that reads slowly never holds up the worker (a reply is at most its token limit).</summary>
        public Channel<GenerationUpdate> Updates { get; } = Channel.CreateUnbounded<GenerationUpdate>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });

        public LinkedListNode<Job>? Node { get; set; }
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
