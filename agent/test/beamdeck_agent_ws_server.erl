%%% @doc Test support: runs test/support/ws_echo_server.mjs (the Node `ws`
%%% package, a real WebSocket server) as a port, reads its JSON event lines
%%% and sends it commands. Used by the ws and conn tests.
-module(beamdeck_agent_ws_server).

-export([start/0, start/1, stop/1, port/1, cmd/2, await/2, await/3, events/1,
         make_cert/1, make_cert/2, script/0]).

-define(LINE_MAX, 1048576).

%% @doc Start a plain server on a random port.
-spec start() -> map().
start() -> start([]).

%% @doc Start with extra arguments (e.g. ["--tls", Cert, Key], ["--port", "1234"]).
-spec start([string()]) -> map().
start(Args) ->
    Node = case os:find_executable("node") of
               false -> error(node_not_found);
               N -> N
           end,
    Port = open_port({spawn_executable, Node},
                     [{args, [script() | Args]}, {line, ?LINE_MAX}, binary,
                      use_stdio, exit_status, hide]),
    S = #{port => Port},
    put({?MODULE, buffer, Port}, []),
    #{<<"port">> := TcpPort} = await(S, fun(#{<<"ev">> := E}) -> E =:= <<"listening">> end, 10000),
    S#{tcp_port => TcpPort}.

%% @doc Stop the server and wait for the Node process to exit.
-spec stop(map()) -> ok.
stop(#{port := Port}) ->
    OsPid = case erlang:port_info(Port, os_pid) of
                {os_pid, P} -> P;
                undefined -> undefined
            end,
    catch port_command(Port, <<"{\"cmd\":\"exit\"}\n">>),
    receive
        {Port, {exit_status, _}} -> ok
    after 5000 ->
        catch port_close(Port),
        _ = OsPid =/= undefined andalso os:cmd("kill -9 " ++ integer_to_list(OsPid)),
        ok
    end,
    erase({?MODULE, buffer, Port}),
    flush(Port).

flush(Port) ->
    receive {Port, _} -> flush(Port)
    after 0 -> ok
    end.

%% @doc The TCP port the server listens on.
-spec port(map()) -> inet:port_number().
port(#{tcp_port := P}) -> P.

%% @doc Send a command map (see the script's header).
-spec cmd(map(), map()) -> ok.
cmd(#{port := Port}, Cmd) ->
    true = port_command(Port, [beamdeck_agent_json:encode(Cmd), $\n]),
    ok.

%% @doc Wait for an event for which `Pred' holds; other events stay buffered.
-spec await(map(), fun((map()) -> boolean())) -> map().
await(S, Pred) -> await(S, Pred, 5000).

%% @doc Like await/2 with a timeout in ms; raises `{timeout, Buffered}'.
-spec await(map(), fun((map()) -> boolean()), timeout()) -> map().
await(#{port := Port} = S, Pred, Timeout) ->
    Buf = get({?MODULE, buffer, Port}),
    case take(Pred, Buf, []) of
        {ok, Ev, Rest} ->
            put({?MODULE, buffer, Port}, Rest),
            Ev;
        none ->
            Deadline = erlang:monotonic_time(millisecond) + Timeout,
            read_until(S, Pred, Deadline, <<>>)
    end.

read_until(#{port := Port} = S, Pred, Deadline, Partial) ->
    Left = max(0, Deadline - erlang:monotonic_time(millisecond)),
    receive
        {Port, {data, {noeol, Chunk}}} ->
            read_until(S, Pred, Deadline, <<Partial/binary, Chunk/binary>>);
        {Port, {data, {eol, Chunk}}} ->
            Line = <<Partial/binary, Chunk/binary>>,
            case beamdeck_agent_json:decode(Line) of
                {ok, Ev} when is_map(Ev) ->
                    case catch Pred(Ev) of
                        true -> Ev;
                        _ ->
                            put({?MODULE, buffer, Port}, get({?MODULE, buffer, Port}) ++ [Ev]),
                            read_until(S, Pred, Deadline, <<>>)
                    end;
                _ ->
                    read_until(S, Pred, Deadline, <<>>)
            end;
        {Port, {exit_status, St}} ->
            error({server_exited, St, get({?MODULE, buffer, Port})})
    after Left ->
        error({timeout, get({?MODULE, buffer, Port})})
    end.

take(_Pred, [], _Acc) -> none;
take(Pred, [E | Rest], Acc) ->
    case catch Pred(E) of
        true -> {ok, E, lists:reverse(Acc, Rest)};
        _ -> take(Pred, Rest, [E | Acc])
    end.

%% @doc Every event received so far (buffered plus pending), in order; clears them.
-spec events(map()) -> [map()].
events(#{port := Port} = S) ->
    try read_until(S, fun(_) -> false end, erlang:monotonic_time(millisecond) + 200, <<>>)
    catch error:{timeout, _} -> ok
    end,
    Evs = get({?MODULE, buffer, Port}),
    put({?MODULE, buffer, Port}, []),
    Evs.

%% @doc A self-signed certificate for localhost/127.0.0.1 in `Dir': {Cert, Key}.
-spec make_cert(file:filename()) -> {string(), string()}.
make_cert(Dir) ->
    make_cert(Dir, "localhost").

%% @doc A self-signed certificate for `Name' (plus 127.0.0.1 when it is
%% localhost) in `Dir': {Cert, Key}.
-spec make_cert(file:filename(), string()) -> {string(), string()}.
make_cert(Dir, Name) ->
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    Cert = filename:join(Dir, Name ++ "-cert.pem"),
    Key = filename:join(Dir, Name ++ "-key.pem"),
    San = case Name of
              "localhost" -> "DNS:localhost,IP:127.0.0.1";
              _ -> "DNS:" ++ Name
          end,
    Cmd = "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=" ++ Name ++
          " -addext subjectAltName=" ++ San ++
          " -keyout " ++ Key ++ " -out " ++ Cert ++ " 2>&1",
    Out = os:cmd(Cmd),
    case filelib:is_regular(Cert) andalso filelib:is_regular(Key) of
        true -> {Cert, Key};
        false -> error({openssl_failed, Out})
    end.

%% @doc Where the Node script is: beside this source, or under test/support.
-spec script() -> string().
script() ->
    Candidates = [filename:join([filename:dirname(?FILE), "support", "ws_echo_server.mjs"]),
                  filename:join([filename:dirname(code:which(?MODULE)), "..", "test", "support",
                                 "ws_echo_server.mjs"]),
                  filename:absname("test/support/ws_echo_server.mjs"),
                  filename:absname("agent/test/support/ws_echo_server.mjs")],
    case [C || C <- Candidates, filelib:is_regular(C)] of
        [Found | _] -> Found;
        [] -> error({script_not_found, Candidates})
    end.
