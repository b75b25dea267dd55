using System.CommandLine;
using Kangaroo.Native.Engine;
using Kangaroo.Native.Server;
using Kangaroo.Native.Server.Scheduling;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Hosting;

namespace Kangaroo.Native.Cli;

/// <summary><c>kangaroo serve</c>: the OpenAI-compatible server over one model, until SIGTERM or Ctrl-C.</summary>
internal static class ServeCommand
{
    public const string ApiKeyVariable = "KANGAROO_API_KEY";

    public static Command Create()
    {
        var modelArguments = new ModelArguments(withTokenizer: true);
        var speculation = new SpeculationArguments(withDecoder: true);
        var chatArguments = new ChatArguments(withSystem: false);
        var host = new Option<string>("--host") { Description = "address to listen on: an IP address or localhost", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "port to listen on (0: any free port)", DefaultValueFactory = _ => 8080 };
        var parallel = new Option<int>("--parallel") { Description = "sequences decoded together, each step one pass over a row of each (KV cache slots)", DefaultValueFactory = _ => 1 };
        var queue = new Option<int>("--queue") { Description = "requests that may wait for a slot; more are refused with 503 and Retry-After", DefaultValueFactory = _ => 64 };
        var apiKey = new Option<string>("--api-key") { Description = $"require 'Authorization: Bearer KEY' on every request but /health (default: ${ApiKeyVariable})" };

        var command = new Command("serve", "Serve the model over an OpenAI-compatible HTTP API (/v1/chat/completions, /v1/completions, /v1/models, /health)")
        {
            host, port, parallel, queue, apiKey,
        };
        modelArguments.AddTo(command);
        speculation.AddTo(command);
        chatArguments.AddTo(command);
        command.SetAction(result => CliRunner.Guard(() =>
        {
            if (result.GetValue(port) is < 0 or > 65535) throw new ArgumentException($"--port {result.GetValue(port)} must be from 0 to 65535");
            if (result.GetValue(parallel) < 1) throw new ArgumentException($"--parallel {result.GetValue(parallel)} must be >= 1");
            if (result.GetValue(queue) < 0) throw new ArgumentException($"--queue {result.GetValue(queue)} must be >= 0");
            var key = result.GetValue(apiKey) ?? (Environment.GetEnvironmentVariable(ApiKeyVariable) is { Length: > 0 } fromEnvironment ? fromEnvironment : null);
            if (key is { Length: 0 }) throw new ArgumentException("--api-key is empty");

            if (result.GetValue(parallel) > LlamaModel.MaxBlockRows) throw new ArgumentException($"--parallel {result.GetValue(parallel)} must be at most {LlamaModel.MaxBlockRows}");
            using var session = modelArguments.Open(result, result.GetValue(parallel));
            var model = new ServedModel(session, chatArguments.LoadIfAny(result, session));
            var notes = new List<string>();
            if (key is not null) notes.Add("API key required");
            if (model.Template is null) notes.Add("no chat template: /v1/chat/completions is refused (pass --chat-template FILE)");
            var scheduler = new BatchScheduler(session, speculation.CreateDecoder(session, result), result.GetValue(queue));
            try
            {
                var app = KangarooServer.Create(model, scheduler, new ServerOptions
                {
                    Host = result.GetValue(host)!, Port = result.GetValue(port), ApiKey = key, Log = Console.Error.WriteLine,
                });
                try
                {
                    app.StartAsync().GetAwaiter().GetResult();
                    var status = scheduler.Status;
                    Console.Error.WriteLine($"kangaroo: serving {model.Id} on {string.Join(", ", app.Urls)} (device {session.Device.Kind}, context {model.Context}, " +
                        $"decoder {status.Decoder}: {status.Speculation}){string.Concat(notes.Select(n => "; " + n))}");
                    app.WaitForShutdownAsync().GetAwaiter().GetResult(); // SIGTERM or Ctrl-C: stop listening, finish the requests in flight
                }
                finally
                {
                    app.DisposeAsync().AsTask().GetAwaiter().GetResult();
                }
            }
            finally
            {
                scheduler.DisposeAsync().AsTask().GetAwaiter().GetResult();
            }
            return 0;
        }));
        return command;
    }
}
