%%% @doc A hidden Erlang node that evaluates expressions on other nodes for
%%% the TypeScript test harness (tools/beam/probe.ts).
%%%
%%% Run as `escript tools/beam/probe.erl SNAME' (ERL_EPMD_PORT as for the
%%% nodes it talks to). It starts distribution as a hidden node, prints
%%% `{"ready":true,"node":"SNAME@HOST"}' and then serves one request per line
%%% on stdin, each answered by one JSON line on stdout, in any order:
%%%
%%% ```
%%% ID TIMEOUT_MS MODE NODE COOKIE BASE64(EXPRESSION)
%%% {"id":ID,"ok":true,"text":"..."}    MODE text: the value printed with ~0tp
%%%                                      on the target node (pids in its
%%%                                      local form)
%%% {"id":ID,"ok":true,"json":...}      MODE json: the value as JSON (below)
%%% {"id":ID,"ok":false,"error":"..."}  parse error, exception, timeout,
%%%                                      no connection
%%% '''
%%%
%%% The expression (Erlang, one or more comma-separated expressions, a final
%%% `.' optional) is evaluated by erl_eval ON THE TARGET NODE through erpc,
%%% with the per-request timeout. JSON mode maps atoms to strings (but
%%% `true', `false', `null'), binaries and printable lists to strings,
%%% tuples and lists to arrays, maps to objects, integers beyond 2^53 to
%%% strings, and pids, ports and references to the text the target node
%%% would print. The probe halts when stdin closes.
-module(probe).
-mode(compile).

-export([main/1]).

-define(MAX_SAFE_INT, 9007199254740991).

%% @doc escript entry: starts distribution and serves stdin.
-spec main(Args) -> no_return() when Args :: [string()].
main([Sname]) ->
    case net_kernel:start(list_to_atom(Sname), #{name_domain => shortnames, hidden => true}) of
        {ok, _} ->
            reply([<<"{\"ready\":true,\"node\":">>, str(atom_to_binary(node())), <<"}">>]),
            loop();
        {error, Reason} ->
            io:format(standard_error, "probe: cannot start distribution: ~0p~n", [Reason]),
            halt(1)
    end;
main(_) ->
    io:put_chars(standard_error, "usage: escript probe.erl SNAME\n"),
    halt(2).

loop() ->
    case io:get_line(standard_io, "") of
        eof ->
            halt(0);
        {error, _} ->
            halt(0);
        Line ->
            _ = spawn(fun() -> serve(string:trim(Line)) end),
            loop()
    end.

serve(Line) ->
    case string:lexemes(Line, " ") of
        [Id, Timeout, Mode, Node, Cookie, Expr] ->
            IdJson = list_to_binary(Id),
            Res = try
                      request(list_to_integer(Timeout), Mode, list_to_atom(Node),
                              list_to_atom(Cookie), base64:decode_to_string(Expr))
                  catch
                      throw:{probe, Msg} -> {error, Msg};
                      Class:Reason -> {error, fmt("~0p:~0p", [Class, Reason])}
                  end,
            reply(answer(IdJson, Res));
        _ ->
            reply([<<"{\"id\":null,\"ok\":false,\"error\":">>,
                   str(fmt("bad request: ~0tp", [Line])), <<"}">>])
    end.

answer(Id, {text, Text}) ->
    [<<"{\"id\":">>, Id, <<",\"ok\":true,\"text\":">>, str(Text), <<"}">>];
answer(Id, {json, Json}) ->
    [<<"{\"id\":">>, Id, <<",\"ok\":true,\"json\":">>, Json, <<"}">>];
answer(Id, {error, Msg}) ->
    [<<"{\"id\":">>, Id, <<",\"ok\":false,\"error\":">>, str(Msg), <<"}">>].

request(Timeout, Mode, Node, Cookie, Expr) ->
    true = erlang:set_cookie(Node, Cookie),
    Exprs = parse(Expr),
    case Mode of
        "text" ->
            %% Printed on the target so that pids read as the node prints them.
            L = erl_anno:new(1),
            Print = [{call, L, {remote, L, {atom, L, io_lib}, {atom, L, format}},
                      [{string, L, "~0tp"}, {cons, L, {block, L, Exprs}, {nil, L}}]}],
            {value, Chars, _} = eval(Node, Print, Timeout),
            {text, unicode:characters_to_binary(Chars)};
        "json" ->
            {value, Value, _} = eval(Node, Exprs, Timeout),
            {json, to_json(Value, Node)};
        _ ->
            throw({probe, fmt("unknown mode ~ts", [Mode])})
    end.

parse(Expr) ->
    Text = case string:trim(Expr, trailing) of
               "" -> throw({probe, <<"empty expression">>});
               T -> case lists:last(T) of
                        $. -> T;
                        _ -> T ++ "."
                    end
           end,
    case erl_scan:string(Text) of
        {ok, Tokens, _} ->
            case erl_parse:parse_exprs(Tokens) of
                {ok, Exprs} -> Exprs;
                {error, {Loc, Mod, Desc}} ->
                    throw({probe, fmt("syntax error at ~0p: ~ts", [Loc, Mod:format_error(Desc)])})
            end;
        {error, {Loc, Mod, Desc}, _} ->
            throw({probe, fmt("scan error at ~0p: ~ts", [Loc, Mod:format_error(Desc)])})
    end.

eval(Node, Exprs, Timeout) ->
    try
        erpc:call(Node, erl_eval, exprs, [Exprs, []], Timeout)
    catch
        error:{erpc, timeout} ->
            throw({probe, fmt("timeout after ~b ms on ~ts", [Timeout, Node])});
        error:{erpc, noconnection} ->
            throw({probe, fmt("noconnection: ~ts", [Node])});
        Class:{exception, Reason, Stack} ->
            throw({probe, fmt("~0p:~0tp ~0tp", [Class, Reason, Stack])});
        Class:Reason ->
            throw({probe, fmt("~0p:~0tp", [Class, Reason])})
    end.

%%% JSON %%%

to_json(true, _N) -> <<"true">>;
to_json(false, _N) -> <<"false">>;
to_json(null, _N) -> <<"null">>;
to_json(A, _N) when is_atom(A) -> str(atom_to_binary(A));
to_json(I, _N) when is_integer(I), abs(I) =< ?MAX_SAFE_INT -> integer_to_binary(I);
to_json(I, _N) when is_integer(I) -> str(integer_to_binary(I));
to_json(F, _N) when is_float(F) -> float_to_binary(F, [short]);
to_json(B, N) when is_binary(B) ->
    case unicode:characters_to_binary(B) of
        B -> str(B);
        _ -> to_json(binary_to_list(B), N)
    end;
to_json(L, N) when is_list(L) ->
    case L =/= [] andalso io_lib:printable_unicode_list(L) of
        true -> str(unicode:characters_to_binary(L));
        false ->
            try [$[, lists:join($,, [to_json(E, N) || E <- L]), $]]
            catch error:_ -> str(fmt("~0tp", [L]))   % improper list
            end
    end;
to_json(T, N) when is_tuple(T) ->
    to_json(tuple_to_list(T), N);
to_json(M, N) when is_map(M) ->
    Fields = [[str(key(K)), $:, to_json(V, N)] || {K, V} <- maps:to_list(M)],
    [${, lists:join($,, Fields), $}];
to_json(P, N) when is_pid(P); is_port(P); is_reference(P) ->
    str(local_form(fmt("~0p", [P]), node(P) =:= N));
to_json(Other, _N) ->
    str(fmt("~0tp", [Other])).

key(K) when is_atom(K) -> atom_to_binary(K);
key(K) when is_binary(K) -> K;
key(K) -> fmt("~0tp", [K]).

%% "<8935.112.0>" as the probe sees it is "<0.112.0>" on the node itself.
local_form(Text, true) ->
    re:replace(Text, "^(<|#Port<|#Ref<)[0-9]+\\.", "\\g{1}0.", [{return, binary}]);
local_form(Text, false) ->
    Text.

str(Bin) ->
    [$", [esc(C) || C <- unicode:characters_to_list(Bin)], $"].

esc($") -> <<"\\\"">>;
esc($\\) -> <<"\\\\">>;
esc($\n) -> <<"\\n">>;
esc($\r) -> <<"\\r">>;
esc($\t) -> <<"\\t">>;
esc(C) when C < 16#20 -> io_lib:format("\\u~4.16.0b", [C]);
esc(C) -> unicode:characters_to_binary([C]).

fmt(Fmt, Args) ->
    unicode:characters_to_binary(io_lib:format(Fmt, Args)).

reply(IoData) ->
    io:put_chars(standard_io, [IoData, $\n]).
