%%% @doc The agent's settings: application env with OS env overrides.
%%%
%%% `BEAMDECK_URL', `BEAMDECK_TOKEN', `BEAMDECK_NODE_ID' and
%%% `BEAMDECK_TLS_VERIFY' (`false'/`0' turns certificate verification off)
%%% win over the application env, so an operator can point a built release
%%% at a server without rebuilding it. Every setting has a default here too,
%%% so the agent works when its `.app' file was not loaded.
-module(beamdeck_agent_config).

-compile({no_auto_import, [get/1]}).

-export([get/1, get/2, url/0, parse_url/1, token/0, tls_verify/0,
         boot_id/0, new_boot_id/0, node_name/0, agent_version/0]).

-define(APP, beamdeck_agent).
-define(BOOT_ID_KEY, {beamdeck_agent, boot_id}).

-type endpoint() :: #{scheme := ws | wss, host := string(), port := inet:port_number(),
                      path := string()}.
-export_type([endpoint/0]).

%% @doc A setting: OS env override, else application env, else the default.
-spec get(Key) -> term() when Key :: atom().
get(url) -> env_or(os_string("BEAMDECK_URL"), url);
get(token) -> env_or(os_string("BEAMDECK_TOKEN"), token);
get(node_id) -> env_or(os_string("BEAMDECK_NODE_ID"), node_id);
get(tls_verify) ->
    case os_string("BEAMDECK_TLS_VERIFY") of
        undefined -> app_env(tls_verify);
        V -> not lists:member(string:lowercase(string:trim(V)), ["false", "0", "no", "off"])
    end;
get(Key) -> app_env(Key).

%% @doc A setting, with `Default' when it is unset (undefined).
-spec get(Key, Default) -> term() when Key :: atom(), Default :: term().
get(Key, Default) ->
    case get(Key) of
        undefined -> Default;
        V -> V
    end.

%% @doc The server endpoint: `undefined' when no URL is set, else the parsed URL.
-spec url() -> undefined | {ok, endpoint()} | {error, Reason}
    when Reason :: {bad_url, string(), Why :: atom()}.
url() ->
    case get(url) of
        undefined -> undefined;
        "" -> undefined;
        <<>> -> undefined;
        Url -> parse_url(Url)
    end.

%% @doc Parse `ws://HOST:PORT/agent', `wss://…/agent', or an `http(s)://HOST:PORT'
%% base (then `/agent' is appended; http becomes ws, https wss).
-spec parse_url(Url) -> {ok, endpoint()} | {error, {bad_url, string(), Why :: atom()}}
    when Url :: string() | binary().
parse_url(Url) when is_binary(Url) -> parse_url(unicode:characters_to_list(Url));
parse_url(Url0) when is_list(Url0) ->
    Url = string:trim(Url0),
    case catch uri_string:parse(Url) of
        #{scheme := Scheme, host := Host} = U when Host =/= "" ->
            scheme_endpoint(string:lowercase(Scheme), Host, U, Url);
        #{scheme := _} -> {error, {bad_url, Url, missing_host}};
        #{} -> {error, {bad_url, Url, missing_scheme}};
        _ -> {error, {bad_url, Url, unparsable}}
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
        T when is_list(T) -> T;
        T when is_atom(T) -> atom_to_list(T)
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

env_or(undefined, Key) -> app_env(Key);
env_or(Value, _Key) -> Value.

%% An OS variable; unset and empty count as absent.
os_string(Name) ->
    case os:getenv(Name) of
        false -> undefined;
        "" -> undefined;
        V -> V
    end.

app_env(Key) -> application:get_env(?APP, Key, default(Key)).

to_binary(B) when is_binary(B) -> B;
to_binary(A) when is_atom(A) -> atom_to_binary(A, utf8);
to_binary(L) when is_list(L) -> unicode:characters_to_binary(L).

%% Keep in step with beamdeck_agent.app.src.
default(tls_verify) -> true;
default(get_state) -> false;
default(min_interval_ms) -> 1000;
default(min_reset_interval_ms) -> 10000;
default(budget_10k) -> 0.01;
default(budget_100k) -> 0.05;
default(top_n) -> 20;
default(max_queue) -> 2000;
default(event_buffer) -> 10000;
default(max_message) -> 1048576;
default(max_frame) -> 1048576;
default(_) -> undefined.
