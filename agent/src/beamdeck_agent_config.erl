%%% @doc The agent's settings: one schema, from which the defaults, the
%%% validation and the README's config table all come.
%%%
%%% A value comes from the OS env (for the keys that have a `BEAMDECK_*'
%%% variable: `BEAMDECK_URL', `BEAMDECK_TOKEN', `BEAMDECK_NODE_ID', `BEAMDECK_GROUP',
%%% `BEAMDECK_TLS_VERIFY'), else the application env, else the schema's
%%% default; every value goes through the same check. An invalid value is
%%% never used: {@link get/1} answers the default instead, and
%%% {@link check/0} (called at application start) logs one warning line per
%%% invalid value naming the key, the value, where it came from and what is
%%% expected. The agent runs inside the operator's node, so a typo in its
%%% config must not stop that node from booting (a failing application in a
%%% release's boot script would); it falls back instead, loudly.
%%%
%%% Defaults live here only (not in the `.app.src'), so the agent behaves the
%%% same when its `.app' file was not loaded.
-module(beamdeck_agent_config).

-compile({no_auto_import, [get/1]}).

-export([get/1, urls/0, parse_url/1, parse_urls/1, token/0, tls_verify/0, boot_id/0, new_boot_id/0,
         node_name/0, agent_version/0, schema/0, check/0, doc_table/0]).

%% Exported for the EUnit tests only.
-ifdef(TEST).
-export([validate/2, problems/0]).
-endif.

-define(APP, beamdeck_agent).
-define(BOOT_ID_KEY, {beamdeck_agent, boot_id}).

-type endpoint() :: #{scheme := ws | wss, host := string(), port := inet:port_number(),
                      path := string()}.
%% `text': a string or binary (`undefined' = unset); `share': a number
%% > 0 and =< 1 (a share of one scheduler).
-type type() :: text | boolean | share | {integer, Min :: integer(), Max :: integer()}.
-type entry() :: #{key := atom(), type := type(), default := term(),
                   os := string() | none, doc := string()}.
-type problem() :: #{key := atom(), value := term(), source := string(),
                     expected := string(), default := term()}.
-export_type([endpoint/0, type/0, entry/0, problem/0]).

%%% SCHEMA %%%

%% @doc Every setting: its type (and range or floor), default, OS variable
%% and meaning. Intervals have floors: a scan or resync more often than
%% once a second costs the node more than the dashboard gains.
-spec schema() -> [entry()].
schema() ->
    [e(url, text, undefined, "BEAMDECK_URL",
       "server endpoint, `ws://HOST:4000/agent` (or `wss://…`; an `http(s)://HOST:PORT` "
       "base works too); several separated by commas are tried in order, then round, "
       "moving on after each failure. Without it the agent stays idle and says so once"),
     e(token, text, undefined, "BEAMDECK_TOKEN",
       "an agent token from `beamdeck agent-token create <label>`"),
     e(node_id, text, undefined, "BEAMDECK_NODE_ID",
       "identity when the node is not distributed"),
     e(group, text, undefined, "BEAMDECK_GROUP",
       "the node's group for fleets and rollouts (default: the name of the release it runs)"),
     e(tls_verify, boolean, true, "BEAMDECK_TLS_VERIFY",
       "`false` turns off certificate verification (tests only)"),
     e(tls_cacertfile, text, undefined, none,
       "PEM file of CA certificates to trust instead of the OS ones (a private CA)"),
     e(get_state, boolean, false, none,
       "`true` lets the dashboard read `sys:get_state/2` (off: state can hold secrets)"),
     e(min_interval_ms, {integer, 1000, 60000}, 1000, none,
       "shortest time between two process scans"),
     e(budget_10k, share, 0.01, none,
       "share of one scheduler each periodic pass (process scan, tree, old-code scan) may use at 10k processes or fewer"),
     e(budget_100k, share, 0.05, none,
       "share of one scheduler each periodic pass (process scan, tree, old-code scan) may use at 100k processes or more"),
     e(old_code_rescan_ms, {integer, 1000, 3600000}, 60000, none,
       "longest time between two full old-code scans; in between a poll re-checks only the "
       "processes found on old code and new ones (below the server's 10 s poll: every poll "
       "checks every process)"),
     e(top_n, {integer, 0, 1000}, 20, none,
       "processes by mailbox and by memory always refreshed each scan"),
     e(full_table_max, {integer, 1000, 10000000}, 200000, none,
       "above this many processes the agent sends only hot spots (top-N by mailbox and "
       "memory, hot mailboxes; `procs` `partial: true`), not a table of every process"),
     e(mailbox_monitor, boolean, true, none,
       "on OTP 27+, take the node's system monitor for long message queues when no one "
       "holds it (never replaces the host's)"),
     e(min_reset_interval_ms, {integer, 1000, 3600000}, 10000, none,
       "shortest time between two full resyncs (one costs ~1 s of a scheduler at 100k processes)"),
     e(max_queue, {integer, 10, 1000000}, 2000, none,
       "outbound frames queued before the oldest is dropped"),
     e(max_message, {integer, 65536, 67108864}, 1048576, none,
       "largest WebSocket message accepted from the server (bytes)"),
     e(max_frame, {integer, 65536, 67108864}, 1048576, none,
       "largest frame the agent sends (bytes; the server caps frames at 1 MiB by default)"),
     e(event_buffer, {integer, 100, 10000000}, 10000, none,
       "events kept until the server acknowledges them"),
     e(event_buffer_bytes, {integer, 65536, 1073741824}, 16777216, none,
       "the same buffer's cap in bytes (external size)"),
     e(event_inflight_max, {integer, 1, 100000}, 1000, none,
       "events being formatted at once before the logger handler drops (and counts)"),
     e(event_resend_ms, {integer, 1000, 3600000}, 10000, none,
       "unacknowledged events are sent again after this long"),
     e(progress_reports, boolean, false, none,
       "also capture supervisor progress reports (needs logger level info)"),
     e(state_dir, text, undefined, none,
       "where the upgrade command journal and the fallback timer's record live (default: "
       "the release's `releases/` directory, else a temp dir)")].

e(Key, Type, Default, Os, Doc) ->
    #{key => Key, type => Type, default => Default, os => Os, doc => Doc}.

%% @doc Check one value against a schema type: `{ok, Value}' (a share is
%% made a float), or `{error, Expected}' saying what was expected.
-spec validate(Type, Value) -> {ok, term()} | {error, Expected}
    when Type :: type(), Value :: term(), Expected :: string().
validate(text, undefined) -> {ok, undefined};
validate(text, V) when is_binary(V) -> {ok, V};
validate(text, V) when is_list(V) ->
    case io_lib:printable_unicode_list(V) of
        true -> {ok, V};
        false -> {error, expected(text)}
    end;
validate(boolean, V) when is_boolean(V) -> {ok, V};
validate(share, V) when is_number(V), V > 0, V =< 1 -> {ok, float(V)};
validate({integer, Min, Max}, V) when is_integer(V), V >= Min, V =< Max -> {ok, V};
validate(Type, _) -> {error, expected(Type)}.

expected(text) -> "a string";
expected(boolean) -> "true or false";
expected(share) -> "a number > 0 and =< 1";
expected({integer, Min, Max}) -> lists:flatten(io_lib:format("an integer from ~b to ~b", [Min, Max])).

%% @doc Every invalid value set now, and log one warning line for each (the
%% agent then uses the default). Unknown application env keys are logged too
%% (a typo'd key is silently ignored otherwise). Called at application start.
-spec check() -> [problem()].
check() ->
    Problems = problems(),
    [logger:warning("~ts", [problem_line(P)]) || P <- Problems],
    Known = [K || #{key := K} <- schema()],
    [logger:warning("beamdeck_agent config: unknown key ~tp in the application env is ignored "
                    "(known: ~0tp)", [K, Known])
     || {K, _} <- application:get_all_env(?APP), not lists:member(K, Known), K =/= included_applications],
    Problems.

%% @doc Every invalid value set now (in the OS env or the application env),
%% without logging.
-spec problems() -> [problem()].
problems() ->
    [#{key => K, value => V, source => Src, expected => Why, default => D}
     || #{key := K, default := D} = E <- schema(),
        {Src, V, {error, Why}} <- [raw(E)]].

problem_line(#{key := K, value := V, source := Src, expected := Why, default := D}) ->
    lists:flatten(io_lib:format("beamdeck_agent config: ~tp = ~tp (~ts) is invalid: expected ~ts; "
                                "using the default ~tp", [K, V, Src, Why, D])).

%% @doc The README's config table (markdown rows), made from the schema.
-spec doc_table() -> binary().
doc_table() ->
    Head = ["| setting | env | default | valid | meaning |\n",
            "| --- | --- | --- | --- | --- |\n"],
    Rows = [io_lib:format("| `~ts` | ~ts | ~ts | ~ts | ~ts |\n",
                          [K, case Os of none -> ""; _ -> ["`", Os, "`"] end,
                           doc_default(D), expected(T), Doc])
            || #{key := K, type := T, default := D, os := Os, doc := Doc} <- schema()],
    unicode:characters_to_binary([Head | Rows]).

doc_default(undefined) -> "unset";
doc_default(D) -> io_lib:format("`~tp`", [D]).

%%% LOOKUP %%%

%% @doc A setting: OS env override, else application env, else the default.
%% An invalid value yields the default (see {@link check/0}). A key outside
%% the schema is read from the application env as is.
-spec get(Key) -> term() when Key :: atom().
get(Key) ->
    case lists:search(fun(#{key := K}) -> K =:= Key end, schema()) of
        {value, #{default := D} = E} ->
            case raw(E) of
                {_, _, {ok, V}} -> V;
                {_, _, {error, _}} -> D;
                unset -> D
            end;
        false -> application:get_env(?APP, Key, undefined)
    end.

%% @doc The server endpoints, in the order the agent tries them: the
%% `url' setting may name several, separated by commas
%% (`ws://a:4000/agent,ws://b:4000/agent'). `undefined' when none is set.
-spec urls() -> undefined | {ok, [endpoint(), ...]} | {error, Reason}
    when Reason :: {bad_url, string(), Why :: atom()}.
urls() ->
    case get(url) of
        undefined -> undefined;
        Text -> parse_urls(Text)
    end.

%% @doc parse_url/1 over a comma-separated list; empty items are skipped,
%% the first bad one is the error. `undefined' when nothing is left.
-spec parse_urls(Text) -> undefined | {ok, [endpoint(), ...]} | {error, {bad_url, string(), Why :: atom()}}
    when Text :: string() | binary().
parse_urls(Text) when is_binary(Text) -> parse_urls(unicode:characters_to_list(Text));
parse_urls(Text) when is_list(Text) ->
    Items = [string:trim(I) || I <- string:split(Text, ",", all)],
    parse_each([I || I <- Items, I =/= ""], []);
parse_urls(Other) -> parse_url(Other).

parse_each([], []) -> undefined;
parse_each([], Acc) -> {ok, lists:reverse(Acc)};
parse_each([Url | Rest], Acc) ->
    case parse_url(Url) of
        {ok, E} -> parse_each(Rest, [E | Acc]);
        {error, _} = Error -> Error
    end.

%% @doc Parse `ws://HOST:PORT/agent', `wss://…/agent', or an `http(s)://HOST:PORT'
%% base (then `/agent' is appended; http becomes ws, https wss).
-spec parse_url(Url) -> {ok, endpoint()} | {error, {bad_url, string(), Why :: atom()}}
    when Url :: string() | binary().
parse_url(Url) when is_binary(Url) -> parse_url(unicode:characters_to_list(Url));
parse_url(Url0) when is_list(Url0) ->
    Url = string:trim(Url0),
    try uri_string:parse(Url) of
        #{scheme := Scheme, host := Host} = U when Host =/= "" ->
            scheme_endpoint(string:lowercase(Scheme), Host, U, Url);
        #{scheme := _} -> {error, {bad_url, Url, missing_host}};
        #{} -> {error, {bad_url, Url, missing_scheme}};
        _ -> {error, {bad_url, Url, unparsable}}
    catch
        _:_ -> {error, {bad_url, Url, unparsable}}
    end;
parse_url(Other) ->
    {error, {bad_url, lists:flatten(io_lib:format("~0p", [Other])), not_a_string}}.

scheme_endpoint(Scheme, Host, U, Url) ->
    Path = maps:get(path, U, ""),
    Query = case maps:get(query, U, undefined) of
                undefined -> "";
                Q -> "?" ++ Q
            end,
    case Scheme of
        "ws" -> endpoint(ws, Host, U, ws_path(Path) ++ Query, Url);
        "wss" -> endpoint(wss, Host, U, ws_path(Path) ++ Query, Url);
        "http" -> endpoint(ws, Host, U, base_path(Path) ++ Query, Url);
        "https" -> endpoint(wss, Host, U, base_path(Path) ++ Query, Url);
        _ -> {error, {bad_url, Url, unsupported_scheme}}
    end.

endpoint(Scheme, Host, U, Path, Url) ->
    Port = case maps:get(port, U, undefined) of
               undefined when Scheme =:= ws -> 80;
               undefined -> 443;
               P -> P
           end,
    case is_integer(Port) andalso Port > 0 andalso Port < 65536 of
        true -> {ok, #{scheme => Scheme, host => Host, port => Port, path => Path}};
        false -> {error, {bad_url, Url, bad_port}}
    end.

%% A ws URL names the endpoint itself; an empty path means the default one.
ws_path("") -> "/agent";
ws_path("/") -> "/agent";
ws_path(P) -> P.

%% An http URL is the server's base: the endpoint is `<base>/agent'.
base_path(P) ->
    Trimmed = string:trim(P, trailing, "/"),
    case lists:suffix("/agent", Trimmed) of
        true -> Trimmed;
        false -> Trimmed ++ "/agent"
    end.

%% @doc The agent token as a string, or `undefined'.
-spec token() -> string() | undefined.
token() ->
    case get(token) of
        undefined -> undefined;
        T when is_binary(T) -> binary_to_list(T);
        T when is_list(T) -> T
    end.

%% @doc Whether wss verifies the server certificate (default true).
-spec tls_verify() -> boolean().
tls_verify() -> get(tls_verify) =/= false.

%% @doc This boot's id: 32 hex chars, made at application start.
%% Outside a started application (tests, a shell) one is made on first use.
-spec boot_id() -> binary().
boot_id() ->
    case persistent_term:get(?BOOT_ID_KEY, undefined) of
        undefined -> new_boot_id();
        Id -> Id
    end.

%% @doc Make and store a fresh boot id (called by the application's start/2).
-spec new_boot_id() -> binary().
new_boot_id() ->
    Id = string:lowercase(binary:encode_hex(crypto:strong_rand_bytes(16))),
    persistent_term:put(?BOOT_ID_KEY, Id),
    Id.

%% @doc The node's identity: `node()' when distributed, else the `node_id'
%% setting, else `nonode@<hostname>'.
-spec node_name() -> binary().
node_name() ->
    case {node(), get(node_id)} of
        {nonode@nohost, undefined} ->
            {ok, Host} = inet:gethostname(),
            iolist_to_binary(["nonode@", Host]);
        {nonode@nohost, Id} -> to_binary(Id);
        {Node, _} -> atom_to_binary(Node, utf8)
    end.

%% @doc The agent application's version (`"unknown"' if its .app is not loaded).
-spec agent_version() -> binary().
agent_version() ->
    case application:get_key(?APP, vsn) of
        {ok, Vsn} -> to_binary(Vsn);
        undefined -> <<"unknown">>
    end.

%%% INTERNAL %%%

%% Where a setting's value comes from, the value and its check; `unset'
%% when neither env sets it.
raw(#{key := Key, type := Type, os := Os}) ->
    case os_string(Os) of
        undefined ->
            case application:get_env(?APP, Key) of
                {ok, V} -> {"application env", V, validate(Type, V)};
                undefined -> unset
            end;
        S -> {"OS env " ++ Os, S, validate(Type, from_os(Type, S))}
    end.

%% OS variables are strings; a boolean one accepts the usual words.
from_os(boolean, S) ->
    case string:lowercase(string:trim(S)) of
        W when W =:= "true"; W =:= "1"; W =:= "yes"; W =:= "on" -> true;
        W when W =:= "false"; W =:= "0"; W =:= "no"; W =:= "off" -> false;
        _ -> S
    end;
from_os(_Type, S) -> S.

%% An OS variable; unset and empty count as absent.
os_string(none) -> undefined;
os_string(Name) ->
    case os:getenv(Name) of
        false -> undefined;
        "" -> undefined;
        V -> V
    end.

to_binary(B) when is_binary(B) -> B;
to_binary(A) when is_atom(A) -> atom_to_binary(A, utf8);
to_binary(L) when is_list(L) -> unicode:characters_to_binary(L).
