%%% @doc Test support: runs test/support/ws_echo_server.mjs (the Node `ws'
%%% package, a real WebSocket server) as a port, owned by a small process
%%% that keeps its JSON event lines, so any test process may wait for events
%%% or send commands. Used by the ws and conn tests.
-module(beamdeck_agent_ws_server).

-export([start/0, start/1, stop/1, port/1, cmd/2, await/2, await/3, events/1, clear/1,
         make_cert/2, script/0]).

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
    Script = script(),
    Parent = self(),
    Owner = spawn(fun() ->
                          Port = open_port({spawn_executable, Node},
                                           [{args, [Script | Args]}, {line, ?LINE_MAX}, binary,
                                            use_stdio, exit_status, hide]),
                          Parent ! {self(), started},
                          owner(#{port => Port, buffer => [], waiters => [], partial => <<>>,
                                  exited => false})
                  end),
    receive {Owner, started} -> ok end,
    S = #{owner => Owner},
    #{<<"port">> := TcpPort} = await(S, fun(#{<<"ev">> := E}) -> E =:= <<"listening">> end, 10000),
    S#{tcp_port => TcpPort}.

%% @doc Stop the server and wait for the Node process to exit.
-spec stop(map()) -> ok.
stop(#{owner := Owner}) ->
    Ref = monitor(process, Owner),
    Owner ! stop,
    receive {'DOWN', Ref, process, Owner, _} -> ok
    after 10000 -> exit(Owner, kill), ok
    end.

%% @doc The TCP port the server listens on.
-spec port(map()) -> inet:port_number().
port(#{tcp_port := P}) -> P.

%% @doc Send a command map (see the script's header).
-spec cmd(map(), map()) -> ok.
cmd(#{owner := Owner}, Cmd) ->
    Owner ! {cmd, iolist_to_binary([beamdeck_agent_json:encode(Cmd), $\n])},
    ok.

%% @doc Wait for an event for which `Pred' holds; other events stay buffered.
-spec await(map(), fun((map()) -> boolean())) -> map().
await(S, Pred) -> await(S, Pred, 5000).

%% @doc Like await/2 with a timeout in ms; raises `{timeout, Buffered}'.
-spec await(map(), fun((map()) -> boolean()), timeout()) -> map().
await(#{owner := Owner}, Pred, Timeout) ->
    Ref = make_ref(),
    Owner ! {await, self(), Ref, Pred},
    receive
        {Ref, {ok, Ev}} -> Ev;
        {Ref, {exited, St, Buf}} -> error({server_exited, St, Buf})
    after Timeout ->
        Owner ! {cancel, self(), Ref},
        receive
            {Ref, {ok, Ev}} -> Ev;
            {Ref, {buffer, Buf}} -> error({timeout, Buf})
        end
    end.

%% @doc Every buffered event (after a short wait), in order; clears them.
-spec events(map()) -> [map()].
events(#{owner := Owner}) ->
    timer:sleep(200),
    Ref = make_ref(),
    Owner ! {take_all, self(), Ref},
    receive {Ref, Evs} -> Evs end.

%% @doc Forget every buffered event (at the start of a test).
-spec clear(map()) -> ok.
clear(#{owner := Owner}) ->
    Ref = make_ref(),
    Owner ! {take_all, self(), Ref},
    receive {Ref, _} -> ok end.

owner(#{port := Port, exited := Exited} = St) ->
    receive
        {Port, {data, {noeol, Chunk}}} ->
            owner(St#{partial := <<(maps:get(partial, St))/binary, Chunk/binary>>});
        {Port, {data, {eol, Chunk}}} ->
            Line = <<(maps:get(partial, St))/binary, Chunk/binary>>,
            St1 = St#{partial := <<>>},
            case beamdeck_agent_json:decode(Line) of
                {ok, Ev} when is_map(Ev) -> owner(deliver(Ev, St1));
                _ -> owner(St1)
            end;
        {Port, {exit_status, Status}} ->
            [From ! {Ref, {exited, Status, maps:get(buffer, St)}} || {From, Ref, _} <- maps:get(waiters, St)],
            owner(St#{exited := Status, waiters := []});
        {await, From, Ref, Pred} ->
            case take(Pred, maps:get(buffer, St), []) of
                {ok, Ev, Rest} ->
                    From ! {Ref, {ok, Ev}},
                    owner(St#{buffer := Rest});
                none when Exited =/= false ->
                    From ! {Ref, {exited, Exited, maps:get(buffer, St)}},
                    owner(St);
                none ->
                    owner(St#{waiters := maps:get(waiters, St) ++ [{From, Ref, Pred}]})
            end;
        {cancel, From, Ref} ->
            From ! {Ref, {buffer, maps:get(buffer, St)}},
            owner(St#{waiters := [W || {_, R, _} = W <- maps:get(waiters, St), R =/= Ref]});
        {take_all, From, Ref} ->
            From ! {Ref, maps:get(buffer, St)},
            owner(St#{buffer := []});
        {cmd, Bin} ->
            quietly(fun() -> port_command(Port, Bin) end),
            owner(St);
        stop ->
            quietly(fun() -> port_command(Port, <<"{\"cmd\":\"exit\"}\n">>) end),
            OsPid = case erlang:port_info(Port, os_pid) of
                        {os_pid, P} -> P;
                        undefined -> undefined
                    end,
            case Exited of
                false ->
                    receive {Port, {exit_status, _}} -> ok
                    after 5000 ->
                        quietly(fun() -> port_close(Port) end),
                        _ = is_integer(OsPid) andalso os:cmd("kill -9 " ++ integer_to_list(OsPid)),
                        ok
                    end;
                _ -> ok
            end
    end.

%% A port gone already is fine here.
quietly(Fun) ->
    try Fun() catch _:_ -> ok end.

%% A predicate that crashes on an event (a pattern that does not fit) is a no.
matches(Pred, Ev) ->
    try Pred(Ev) catch _:_ -> false end.

deliver(Ev, #{waiters := Waiters, buffer := Buf} = St) ->
    case take_waiter(Ev, Waiters, []) of
        {ok, Rest} -> St#{waiters := Rest};
        none -> St#{buffer := Buf ++ [Ev]}
    end.

take_waiter(_Ev, [], _Acc) -> none;
take_waiter(Ev, [{From, Ref, Pred} = W | Rest], Acc) ->
    case matches(Pred, Ev) of
        true ->
            From ! {Ref, {ok, Ev}},
            {ok, lists:reverse(Acc, Rest)};
        _ -> take_waiter(Ev, Rest, [W | Acc])
    end.

take(_Pred, [], _Acc) -> none;
take(Pred, [E | Rest], Acc) ->
    case matches(Pred, E) of
        true -> {ok, E, lists:reverse(Acc, Rest)};
        _ -> take(Pred, Rest, [E | Acc])
    end.

%% @doc A throwaway CA and a server certificate it signed for `Name' (plus
%% 127.0.0.1 when Name is localhost), in `Dir'. OTP refuses a self-signed
%% peer certificate even when trusted, so the test CA signs a separate one.
-spec make_cert(file:filename(), string()) -> #{ca := string(), cert := string(), key := string()}.
make_cert(Dir, Name) ->
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    F = fun(Base) -> filename:join(Dir, Name ++ "-" ++ Base) end,
    San = case Name of
              "localhost" -> "DNS:localhost,IP:127.0.0.1";
              _ -> "DNS:" ++ Name
          end,
    ok = file:write_file(F("ext.cnf"), ["subjectAltName=", San, "\nbasicConstraints=CA:FALSE\n"
                                        "extendedKeyUsage=serverAuth\n"]),
    Cmds = ["openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=beamdeck-test-ca"
            " -keyout " ++ F("ca-key.pem") ++ " -out " ++ F("ca.pem"),
            "openssl req -newkey rsa:2048 -nodes -subj /CN=" ++ Name ++
            " -keyout " ++ F("key.pem") ++ " -out " ++ F("req.csr"),
            "openssl x509 -req -days 2 -in " ++ F("req.csr") ++ " -CA " ++ F("ca.pem") ++
            " -CAkey " ++ F("ca-key.pem") ++ " -CAcreateserial -extfile " ++ F("ext.cnf") ++
            " -out " ++ F("cert.pem")],
    Out = [os:cmd(C ++ " 2>&1") || C <- Cmds],
    case lists:all(fun filelib:is_regular/1, [F("ca.pem"), F("cert.pem"), F("key.pem")]) of
        true -> #{ca => F("ca.pem"), cert => F("cert.pem"), key => F("key.pem")};
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
