using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Headers;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Kangaroo.Native.Perf;

/// <summary>
/// <c>kangaroo serve</c> under load, as a process: many requests from concurrent clients mixing plain and
/// streamed chat and completions, stop sequences, clients that disconnect mid-stream and bad requests. It
/// checks that every valid request succeeded (and every greedy reply is the same each time its prompt
/// comes), that every bad one got its 4xx in OpenAI's error shape, that no slot or queue place is left
/// taken, that the server's resident memory at the end is within 5% of what it was after warm-up, and that
/// SIGTERM ends it with exit code 0.
/// </summary>
public static partial class ServeSoak
{
    private const int SigTerm = 15;
    private static readonly string[] Messages = ["Tell me about a cat.", "Tell me about a dog.", "Where is the sun?", "Sing me a song.", "Tell me a long story."];
    private static readonly string[] Prompts = ["Once upon a time", "The little dog", "Lily and Tom went to the park.", ""];

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int signal);

    private enum Kind { Chat, ChatStream, Completion, CompletionStream, Disconnect, Bad }

    /// <param name="kangaroo">the built CLI, kangaroo.dll.</param>
    /// <param name="serveArguments">more options of <c>kangaroo serve</c> (model, device, decoder).</param>
    public static bool Run(string kangaroo, IEnumerable<string> serveArguments, int requests, int clients, int tokens, Action<string> log)
    {
        if (!File.Exists(kangaroo)) throw new ArgumentException($"{kangaroo} not found: build it first (dotnet build src/Cli -c Release) or pass --kangaroo PATH/kangaroo.dll");
        var template = Path.Combine(Options.RepositoryRoot(), "tests", "Kangaroo.Native.Tests", "Chat", "chatml.jinja");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var arg in new[] { kangaroo, "serve", "--port", "0", "--chat-template", template }.Concat(serveArguments))
            start.ArgumentList.Add(arg);
        using var server = Process.Start(start)!;
        try
        {
            var line = server.StandardError.ReadLine() ?? throw new InvalidOperationException("serve ended before listening: " + server.StandardError.ReadToEnd());
            var stderr = server.StandardError.ReadToEndAsync();
            var url = ServingUrl().Match(line) is { Success: true } m ? new Uri(m.Value) : throw new InvalidOperationException($"serve said: {line}");
            log($"serve-soak: {requests} requests from {clients} clients, up to {tokens} tokens each, to {line["kangaroo: ".Length..]}; load {Measure.LoadAverage():F1}");
            log("| after | requests | valid ok | bad refused | disconnects | failures | resident (MB) | s |");
            log("| --- | --- | --- | --- | --- | --- | --- | --- |");

            using var http = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = url, Timeout = TimeSpan.FromMinutes(5) };
            var greedy = new ConcurrentDictionary<string, string>();
            var failures = new ConcurrentQueue<string>();
            int next = -1, done = 0, valid = 0, refused = 0, disconnects = 0;
            var warmUp = Math.Min(requests, Math.Max(50, requests / 10));
            long warmResident = 0;
            var clock = Stopwatch.StartNew();
            var snapshotGate = new object();
            long Snapshot(string after)
            {
                var resident = Resident(server.Id);
                log($"| {after} | {Volatile.Read(ref done)} | {valid} | {refused} | {disconnects} | {failures.Count} | {resident / 1e6:F1} | {clock.Elapsed.TotalSeconds:F1} |");
                return resident;
            }

            var workers = Enumerable.Range(0, clients).Select(_ => Task.Run(async () =>
            {
                for (var i = Interlocked.Increment(ref next); i < requests; i = Interlocked.Increment(ref next))
                {
                    try
                    {
                        switch (await One(http, i, tokens, greedy))
                        {
                            case Kind.Bad: Interlocked.Increment(ref refused); break;
                            case Kind.Disconnect: Interlocked.Increment(ref disconnects); break;
                            default: Interlocked.Increment(ref valid); break;
                        }
                    }
                    catch (Exception e)
                    {
                        failures.Enqueue($"request {i} ({(Kind)(i % 7 % 6)}): {e.GetType().Name}: {e.Message}");
                    }
                    var count = Interlocked.Increment(ref done);
                    if (count == warmUp)
                        lock (snapshotGate) warmResident = Snapshot($"{count} requests (warm-up)");
                    else if (count % Math.Max(1, requests / 5) == 0 && count != requests)
                        lock (snapshotGate) Snapshot($"{count} requests");
                }
            })).ToArray();
            Task.WaitAll(workers);

            // Disconnected streams are cancelled within a step: give the server a moment, then nothing may be held.
            JsonElement health = default;
            for (var wait = Stopwatch.StartNew(); wait.Elapsed < TimeSpan.FromSeconds(5); Thread.Sleep(50))
            {
                health = JsonDocument.Parse(http.GetStringAsync("/health").Result).RootElement;
                if (health.GetProperty("slots_busy").GetInt32() == 0 && health.GetProperty("queue_waiting").GetInt32() == 0) break;
            }
            var endResident = Snapshot("all requests");
            var leaked = health.GetProperty("slots_busy").GetInt32() + health.GetProperty("queue_waiting").GetInt32();

            if (kill(server.Id, SigTerm) != 0) throw new InvalidOperationException($"kill failed: {Marshal.GetLastPInvokeError()}");
            var exited = server.WaitForExit(TimeSpan.FromMinutes(1));
            var growth = endResident / (double)warmResident - 1;
            log($"memory: {warmResident / 1e6:F1} MB after {warmUp} requests (warm-up), {endResident / 1e6:F1} MB at the end ({growth:+0.0%;-0.0%})");
            log($"slots and queue places held at the end: {leaked}; SIGTERM: {(exited ? $"exit code {server.ExitCode}" : "still running after 1 minute")}");
            foreach (var failure in failures.Take(20)) log($"FAIL: {failure}");
            if (exited && stderr.Result.Length > 0) log($"serve's stderr: {stderr.Result.Trim().ReplaceLineEndings(" | ")}");
            var ok = failures.IsEmpty && leaked == 0 && growth <= 0.05 && exited && server.ExitCode == 0;
            log(ok ? "serve-soak: ok" : "serve-soak: FAILED");
            return ok;
        }
        finally
        {
            if (!server.HasExited) server.Kill(entireProcessTree: true);
        }
    }

    /// <summary>Request <paramref name="i"/> of the mix; throws when it did not get what it should have.</summary>
    private static async Task<Kind> One(HttpClient http, int i, int tokens, ConcurrentDictionary<string, string> greedy)
    {
        var kind = (Kind)(i % 7 % 6); // two in seven are plain chat
        var maxTokens = 8 + i * 7 % Math.Max(1, tokens - 8);
        var message = Messages[i % Messages.Length];
        var prompt = Prompts[i % Prompts.Length];
        var sampled = i % 5 == 4;
        switch (kind)
        {
            case Kind.Chat or Kind.ChatStream:
            {
                var body = new Dictionary<string, object?>
                {
                    ["messages"] = new[] { new { role = "user", content = message } }, ["max_tokens"] = maxTokens, ["temperature"] = sampled ? 1 : 0, ["seed"] = i,
                    ["stream"] = kind == Kind.ChatStream, ["stream_options"] = kind == Kind.ChatStream ? new { include_usage = i % 2 == 0 } : null,
                };
                var text = kind == Kind.Chat ? await Whole(http, "/v1/chat/completions", body) : await Streamed(http, "/v1/chat/completions", body);
                if (!sampled) Same(greedy, $"chat {message} {maxTokens}", text);
                return kind;
            }
            case Kind.Completion or Kind.CompletionStream:
            {
                var body = new Dictionary<string, object?>
                {
                    ["prompt"] = prompt, ["max_tokens"] = maxTokens, ["temperature"] = sampled ? 1 : 0, ["seed"] = i, ["stop"] = i % 3 == 0 ? new[] { " the", "." } : null,
                    ["stream"] = kind == Kind.CompletionStream,
                };
                var text = kind == Kind.Completion ? await Whole(http, "/v1/completions", body) : await Streamed(http, "/v1/completions", body);
                if (!sampled) Same(greedy, $"completion {prompt} {maxTokens} {i % 3 == 0}", text);
                return kind;
            }
            case Kind.Disconnect:
            {
                using var cancel = new CancellationTokenSource();
                var body = new { messages = new[] { new { role = "user", content = "Tell me a long story." } }, max_tokens = 400, temperature = 0, stream = true };
                using var response = await Send(http, "/v1/chat/completions", JsonSerializer.Serialize(body), HttpCompletionOption.ResponseHeadersRead, cancel.Token);
                Expect(response, 200);
                using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancel.Token));
                for (var events = 0; events < 1 + i % 5;)
                    if ((await reader.ReadLineAsync(cancel.Token) ?? throw new InvalidOperationException("the stream ended early")).StartsWith("data: ", StringComparison.Ordinal)) events++;
                await cancel.CancelAsync(); // and the connection goes with the response
                return kind;
            }
            default:
            {
                var (path, json, status) = (i / 7 % 6) switch
                {
                    0 => ("/v1/chat/completions", "{\"messages\": [", 400),
                    1 => ("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"temperature\": \"hot\"}", 400),
                    2 => ("/v1/chat/completions", "{\"model\": \"gpt-4o\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", 404),
                    3 => ("/v1/completions", "{\"prompt\": \"hi\", \"n\": 2}", 400),
                    4 => ("/v1/completions", JsonSerializer.Serialize(new { prompt = string.Concat(Enumerable.Repeat("Once upon a time there was a dog. ", 100)) }), 400),
                    _ => ("/v1/completions", "{\"prompt\": \"hi\", \"max_tokens\": -5}", 400),
                };
                using var response = await Send(http, path, json, HttpCompletionOption.ResponseContentRead, default);
                Expect(response, status);
                var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
                foreach (var field in new[] { "message", "type", "param", "code" }) _ = error.GetProperty(field);
                return kind;
            }
        }
    }

    private static void Same(ConcurrentDictionary<string, string> greedy, string key, string text)
    {
        var first = greedy.GetOrAdd(key, text);
        if (first != text) throw new InvalidOperationException($"greedy reply to '{key}' differs from the first one: '{text}' vs '{first}'");
    }

    private static async Task<string> Whole(HttpClient http, string path, object body)
    {
        using var response = await Send(http, path, JsonSerializer.Serialize(body), HttpCompletionOption.ResponseContentRead, default);
        Expect(response, 200);
        var choice = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("choices")[0];
        if (choice.GetProperty("finish_reason").GetString() is not ("stop" or "length")) throw new InvalidOperationException("no finish_reason");
        return choice.TryGetProperty("message", out var message) ? message.GetProperty("content").GetString()! : choice.GetProperty("text").GetString()!;
    }

    private static async Task<string> Streamed(HttpClient http, string path, object body)
    {
        using var response = await Send(http, path, JsonSerializer.Serialize(body), HttpCompletionOption.ResponseHeadersRead, default);
        Expect(response, 200);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var text = new StringBuilder();
        string? finish = null;
        while (await reader.ReadLineAsync() is { } line)
        {
            if (!line.StartsWith("data: ", StringComparison.Ordinal)) continue;
            if (line == "data: [DONE]") return finish is null ? throw new InvalidOperationException("the stream had no finish_reason") : text.ToString();
            var chunk = JsonDocument.Parse(line["data: ".Length..]).RootElement;
            if (chunk.TryGetProperty("error", out var error)) throw new InvalidOperationException($"error event: {error}");
            foreach (var choice in chunk.GetProperty("choices").EnumerateArray())
            {
                if (choice.TryGetProperty("delta", out var delta) && delta.TryGetProperty("content", out var content)) text.Append(content.GetString());
                if (choice.TryGetProperty("text", out var piece)) text.Append(piece.GetString());
                if (choice.GetProperty("finish_reason").ValueKind == JsonValueKind.String) finish = choice.GetProperty("finish_reason").GetString();
            }
        }
        throw new InvalidOperationException("the stream ended without [DONE]");
    }

    private static Task<HttpResponseMessage> Send(HttpClient http, string path, string json, HttpCompletionOption completion, CancellationToken cancellationToken)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(json, Encoding.UTF8) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        return http.SendAsync(request, completion, cancellationToken);
    }

    private static void Expect(HttpResponseMessage response, int status)
    {
        if ((int)response.StatusCode != status) throw new InvalidOperationException($"status {(int)response.StatusCode}, expected {status}");
    }

    /// <summary>A process's resident set (VmRSS), in bytes.</summary>
    private static long Resident(int pid)
    {
        var line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
    }

    [GeneratedRegex(@"http://[^ ,)]+")]
    private static partial Regex ServingUrl();
}
