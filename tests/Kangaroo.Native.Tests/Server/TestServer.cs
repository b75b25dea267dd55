using System.ClientModel;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Kangaroo.Native.Engine;
using Kangaroo.Native.Templates;
using Kangaroo.Native.Server;
using Kangaroo.Native.Server.Scheduling;
using Microsoft.AspNetCore.Builder;
using OpenAI;
using OpenAI.Chat;

namespace Kangaroo.Native.Tests.Server;

/// <summary>The real server (Kestrel on a free loopback port) over the embedded story model with the ChatML
/// template file, greedy-exact with the autoregressive decoder, started in the test process.</summary>
public sealed class TestServer : IAsyncDisposable
{
    public static readonly string TemplatePath = Path.Combine(AppContext.BaseDirectory, "Chat", "chatml.jinja");
    public const string ModelId = "stories260K";

    private readonly InferenceSession _session;
    private readonly BatchScheduler _scheduler;

    private TestServer(InferenceSession session, BatchScheduler scheduler, WebApplication app)
    {
        _session = session;
        _scheduler = scheduler;
        App = app;
        BaseAddress = new Uri(app.Urls.Single());
        // A response disposed before its end closes the connection, as a client that goes away does (not drained for reuse).
        Http = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = BaseAddress, Timeout = TimeSpan.FromMinutes(2) };
    }

    public WebApplication App { get; }
    public Uri BaseAddress { get; }
    public HttpClient Http { get; }
    public SchedulerStatus Status => _scheduler.Status;

    /// <param name="tokenDelay">a pause after each step: a model slow enough to be caught mid-generation.</param>
    /// <param name="parallel">sequences decoded together.</param>
    public static async Task<TestServer> Start(int queueCapacity = 16, string? apiKey = null, long maxRequestBodyBytes = 1 << 20,
        TimeSpan tokenDelay = default, TimeSpan? shutdownTimeout = null, int parallel = 1, string decoder = "autoregressive")
    {
        var session = InferenceSession.Open(SharedData.EmbeddedModel, "cpu", sequences: parallel);
        var scheduler = new BatchScheduler(session, session.CreateDecoder(decoder), queueCapacity) { TokenDelay = tokenDelay };
        var app = KangarooServer.Create(new ServedModel(session, ChatTemplate.Load(TemplatePath)), scheduler, new ServerOptions
        {
            Port = 0, ApiKey = apiKey, MaxRequestBodyBytes = maxRequestBodyBytes, ShutdownTimeout = shutdownTimeout ?? TimeSpan.FromSeconds(30),
        });
        await app.StartAsync();
        return new TestServer(session, scheduler, app);
    }

    /// <summary>The official OpenAI client pointed at this server.</summary>
    public ChatClient Chat(string apiKey = "unused") =>
        new(ModelId, new ApiKeyCredential(apiKey), new OpenAIClientOptions { Endpoint = new Uri(BaseAddress, "v1") });

    public OpenAIClient Client(string apiKey = "unused") => new(new ApiKeyCredential(apiKey), new OpenAIClientOptions { Endpoint = new Uri(BaseAddress, "v1") });

    /// <summary>POSTs a JSON body; the status and the parsed answer.</summary>
    public async Task<(int Status, JsonElement Body, HttpResponseMessage Response)> Post(string path, string json, string? apiKey = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        if (apiKey is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        var response = await Http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, JsonDocument.Parse(text).RootElement.Clone(), response);
    }

    public Task<(int Status, JsonElement Body, HttpResponseMessage Response)> Post(string path, object body, string? apiKey = null) =>
        Post(path, JsonSerializer.Serialize(body), apiKey);

    public async Task<JsonElement> Health() => JsonDocument.Parse(await Http.GetStringAsync("/health")).RootElement.Clone();

    /// <summary>Waits until the scheduler is idle (no slot busy, nothing waiting), or fails after <paramref name="within"/>.</summary>
    public async Task<TimeSpan> WaitIdle(TimeSpan within)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (Status is not { Busy: 0, Waiting: 0 })
        {
            if (clock.Elapsed > within) throw new TimeoutException($"the scheduler is still busy after {within}: {Status}");
            await Task.Delay(10);
        }
        return clock.Elapsed;
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await App.DisposeAsync();
        await _scheduler.DisposeAsync();
        _session.Dispose();
    }
}

/// <summary>Server-sent events as a client reads them.</summary>
public static class Sse
{
    /// <summary>Starts a streaming request (headers read, body not).</summary>
    public static async Task<HttpResponseMessage> Open(HttpClient http, string path, object body, CancellationToken cancellationToken = default)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json") };
        return await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
    }

    /// <summary>The data of each event, up to and including <c>[DONE]</c>.</summary>
    public static async IAsyncEnumerable<string> Events(HttpResponseMessage response, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancellationToken));
        while (await reader.ReadLineAsync(cancellationToken) is { } line)
        {
            if (line.Length == 0) continue;
            Assert.StartsWith("data: ", line);
            yield return line["data: ".Length..];
        }
    }

    /// <summary>Reads a whole stream: the events' JSON (without <c>[DONE]</c>, which must end it).</summary>
    public static async Task<List<JsonElement>> ReadAll(HttpResponseMessage response)
    {
        var events = new List<string>();
        await foreach (var data in Events(response)) events.Add(data);
        Assert.Equal("[DONE]", events[^1]);
        return events[..^1].Select(e => JsonDocument.Parse(e).RootElement.Clone()).ToList();
    }

    /// <summary>The text of a stream's chunks (chat deltas or completion texts).</summary>
    public static string Text(IEnumerable<JsonElement> chunks) => string.Concat(chunks.SelectMany(c => c.GetProperty("choices").EnumerateArray()).Select(choice =>
        choice.TryGetProperty("delta", out var delta) ? delta.TryGetProperty("content", out var content) ? content.GetString() : ""
        : choice.GetProperty("text").GetString()));
}
