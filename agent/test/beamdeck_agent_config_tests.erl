-module(beamdeck_agent_config_tests).

-include_lib("eunit/include/eunit.hrl").

-export([log/2]).

-define(C, beamdeck_agent_config).
-define(OS_VARS, ["BEAMDECK_URL", "BEAMDECK_TOKEN", "BEAMDECK_NODE_ID", "BEAMDECK_TLS_VERIFY"]).
-define(APP_KEYS, [url, token, node_id, tls_verify, max_queue, budget_10k, budget_100k,
                   min_interval_ms, top_n, no_such_key]).

%% Every test runs with a clean environment and gets the old one back.
env_test_() ->
    {foreach,
     fun() ->
             Saved = {[{V, os:getenv(V)} || V <- ?OS_VARS],
                      [{K, application:get_env(beamdeck_agent, K)} || K <- ?APP_KEYS]},
             [os:unsetenv(V) || V <- ?OS_VARS],
             [application:unset_env(beamdeck_agent, K) || K <- ?APP_KEYS],
             Saved
     end,
     fun({Os, App}) ->
             [case Val of
                  false -> os:unsetenv(V);
                  _ -> os:putenv(V, Val)
              end || {V, Val} <- Os],
             [case Val of
                  undefined -> application:unset_env(beamdeck_agent, K);
                  {ok, X} -> application:set_env(beamdeck_agent, K, X)
              end || {K, Val} <- App]
     end,
     [{"defaults without any env", fun defaults/0},
      {"application env", fun app_env/0},
      {"OS env overrides the application env", fun os_overrides/0},
      {"BEAMDECK_TLS_VERIFY", fun tls_verify/0},
      {"empty OS variables count as unset", fun empty_os/0},
      {"url/0", fun url/0},
      {"node_name/0", fun node_name/0},
      {"budget_10k 0 is rejected for the default", fun zero_budget/0},
      {"an interval below its floor is rejected", fun interval_floor/0},
      {"OS env values go through the schema", fun os_schema/0},
      {"check/0 logs one line per invalid value", fun check_logs/0},
      {"the sampler survives budget_10k 0", fun sampler_zero_budget/0}]}.

defaults() ->
    ?assertEqual(undefined, ?C:get(url)),
    ?assertEqual(undefined, ?C:token()),
    ?assertEqual(true, ?C:tls_verify()),
    ?assertEqual(2000, ?C:get(max_queue)),
    ?assertEqual(1048576, ?C:get(max_message)),
    ?assertEqual(false, ?C:get(get_state)),
    ?assertEqual(undefined, ?C:get(no_such_key)).

app_env() ->
    application:set_env(beamdeck_agent, url, "ws://a:1/agent"),
    application:set_env(beamdeck_agent, token, <<"bin-token">>),
    application:set_env(beamdeck_agent, tls_verify, false),
    application:set_env(beamdeck_agent, max_queue, 70),
    ?assertEqual("ws://a:1/agent", ?C:get(url)),
    ?assertEqual("bin-token", ?C:token()),
    ?assertEqual(false, ?C:tls_verify()),
    ?assertEqual(70, ?C:get(max_queue)).

os_overrides() ->
    application:set_env(beamdeck_agent, url, "ws://app:1/agent"),
    application:set_env(beamdeck_agent, token, "app-token"),
    application:set_env(beamdeck_agent, node_id, "app@id"),
    os:putenv("BEAMDECK_URL", "ws://os:2/agent"),
    os:putenv("BEAMDECK_TOKEN", "os-token"),
    os:putenv("BEAMDECK_NODE_ID", "os@id"),
    ?assertEqual("ws://os:2/agent", ?C:get(url)),
    ?assertEqual("os-token", ?C:token()),
    ?assertEqual("os@id", ?C:get(node_id)),
    ?assertEqual({ok, [#{scheme => ws, host => "os", port => 2, path => "/agent"}]}, ?C:urls()).

tls_verify() ->
    [begin
         os:putenv("BEAMDECK_TLS_VERIFY", V),
         ?assertEqual(Expected, ?C:tls_verify(), V)
     end || {V, Expected} <- [{"false", false}, {"0", false}, {"FALSE", false}, {" no ", false},
                              {"off", false}, {"true", true}, {"1", true}, {"yes", true}]],
    %% The OS variable wins over the application env both ways.
    application:set_env(beamdeck_agent, tls_verify, false),
    os:putenv("BEAMDECK_TLS_VERIFY", "true"),
    ?assertEqual(true, ?C:tls_verify()),
    os:unsetenv("BEAMDECK_TLS_VERIFY"),
    ?assertEqual(false, ?C:tls_verify()).

empty_os() ->
    application:set_env(beamdeck_agent, url, "ws://app:1/agent"),
    os:putenv("BEAMDECK_URL", ""),
    ?assertEqual("ws://app:1/agent", ?C:get(url)).

url() ->
    ?assertEqual(undefined, ?C:urls()),
    application:set_env(beamdeck_agent, url, ""),
    ?assertEqual(undefined, ?C:urls()),
    application:set_env(beamdeck_agent, url, "http://h:4000"),
    ?assertEqual({ok, [#{scheme => ws, host => "h", port => 4000, path => "/agent"}]}, ?C:urls()),
    application:set_env(beamdeck_agent, url, "nonsense"),
    ?assertMatch({error, {bad_url, "nonsense", _}}, ?C:urls()),
    %% Several endpoints, tried in this order; blanks and empty items are skipped.
    application:set_env(beamdeck_agent, url, " ws://a:1/agent , ,https://b "),
    ?assertEqual({ok, [#{scheme => ws, host => "a", port => 1, path => "/agent"},
                       #{scheme => wss, host => "b", port => 443, path => "/agent"}]}, ?C:urls()),
    %% One bad item is the error (not silently dropped).
    application:set_env(beamdeck_agent, url, "ws://a:1/agent,ftp://b"),
    ?assertMatch({error, {bad_url, "ftp://b", unsupported_scheme}}, ?C:urls()),
    application:set_env(beamdeck_agent, url, " , "),
    ?assertEqual(undefined, ?C:urls()).

node_name() ->
    case erlang:is_alive() of
        true ->
            application:set_env(beamdeck_agent, node_id, "ignored@x"),
            ?assertEqual(atom_to_binary(node(), utf8), ?C:node_name());
        false ->
            {ok, Host} = inet:gethostname(),
            ?assertEqual(iolist_to_binary(["nonode@", Host]), ?C:node_name()),
            application:set_env(beamdeck_agent, node_id, "rel_test@box"),
            ?assertEqual(<<"rel_test@box">>, ?C:node_name()),
            os:putenv("BEAMDECK_NODE_ID", "from_os@box"),
            ?assertEqual(<<"from_os@box">>, ?C:node_name())
    end.

parse_url_test() ->
    Ok = fun(Scheme, Host, Port, Path) -> {ok, #{scheme => Scheme, host => Host, port => Port, path => Path}} end,
    Cases = [{"ws://127.0.0.1:4000/agent", Ok(ws, "127.0.0.1", 4000, "/agent")},
             {"wss://beamdeck.example.com/agent", Ok(wss, "beamdeck.example.com", 443, "/agent")},
             {"ws://h/agent", Ok(ws, "h", 80, "/agent")},
             {"WS://H:1/agent", Ok(ws, "H", 1, "/agent")},
             {"ws://h:4000", Ok(ws, "h", 4000, "/agent")},
             {"ws://h:4000/", Ok(ws, "h", 4000, "/agent")},
             {"ws://h:4000/custom/path", Ok(ws, "h", 4000, "/custom/path")},
             {"ws://h:4000/agent?x=1", Ok(ws, "h", 4000, "/agent?x=1")},
             {"http://h:4000", Ok(ws, "h", 4000, "/agent")},
             {"http://h:4000/", Ok(ws, "h", 4000, "/agent")},
             {"http://h", Ok(ws, "h", 80, "/agent")},
             {"https://h", Ok(wss, "h", 443, "/agent")},
             {"https://h:8443/", Ok(wss, "h", 8443, "/agent")},
             {"https://h/beamdeck", Ok(wss, "h", 443, "/beamdeck/agent")},
             {"https://h/beamdeck/", Ok(wss, "h", 443, "/beamdeck/agent")},
             {"http://h:4000/agent", Ok(ws, "h", 4000, "/agent")},
             {"ws://[::1]:4000/agent", Ok(ws, "::1", 4000, "/agent")},
             {"  ws://h:1/agent \n", Ok(ws, "h", 1, "/agent")},
             {<<"ws://bin:5/agent">>, Ok(ws, "bin", 5, "/agent")}],
    [?assertEqual(Expected, ?C:parse_url(In), In) || {In, Expected} <- Cases].

parse_bad_url_test() ->
    [?assertMatch({error, {bad_url, _, Why}} when is_atom(Why), ?C:parse_url(In), In)
     || In <- ["localhost:4000", "ftp://h/agent", "ws://", "ws:///agent", "not a url",
               "ws://h:99999/agent", "ws://h:0/agent", "//h:1/agent", "", "tcp://h:1"]],
    ?assertMatch({error, {bad_url, _, unsupported_scheme}}, ?C:parse_url("ftp://h/agent")),
    ?assertMatch({error, {bad_url, _, not_a_string}}, ?C:parse_url(42)).

boot_id_test() ->
    Id = ?C:new_boot_id(),
    ?assertEqual(32, byte_size(Id)),
    ?assertMatch({match, _}, re:run(Id, "^[0-9a-f]{32}$")),
    ?assertEqual(Id, ?C:boot_id()),
    ?assertEqual(Id, ?C:boot_id()),
    Id2 = ?C:new_boot_id(),
    ?assertNotEqual(Id, Id2),
    ?assertEqual(Id2, ?C:boot_id()).

agent_version_test() ->
    V = ?C:agent_version(),
    ?assert(is_binary(V)),
    case application:get_key(beamdeck_agent, vsn) of
        {ok, Vsn} -> ?assertEqual(list_to_binary(Vsn), V);
        undefined -> ?assertEqual(<<"unknown">>, V)
    end.

%%% SCHEMA %%%

zero_budget() ->
    application:set_env(beamdeck_agent, budget_10k, 0),
    ?assertEqual(0.01, ?C:get(budget_10k)),
    ?assertEqual([#{key => budget_10k, value => 0, source => "application env",
                    expected => "a number > 0 and =< 1", default => 0.01}], ?C:problems()),
    %% The edge of the range is valid; an integer share is made a float.
    application:set_env(beamdeck_agent, budget_10k, 1),
    ?assertEqual(1.0, ?C:get(budget_10k)),
    ?assertEqual([], ?C:problems()),
    [begin
         application:set_env(beamdeck_agent, budget_100k, Bad),
         ?assertEqual(0.05, ?C:get(budget_100k), Bad),
         ?assertMatch([#{key := budget_100k, value := Bad}], ?C:problems(), Bad)
     end || Bad <- [-0.5, 1.5, "0.1", undefined]].

interval_floor() ->
    application:set_env(beamdeck_agent, min_interval_ms, 100),
    ?assertEqual(1000, ?C:get(min_interval_ms)),
    ?assertMatch([#{key := min_interval_ms, value := 100,
                    expected := "an integer from 1000 to 60000"}], ?C:problems()),
    application:set_env(beamdeck_agent, min_interval_ms, 1000),
    ?assertEqual(1000, ?C:get(min_interval_ms)),
    application:set_env(beamdeck_agent, min_interval_ms, 2500),
    ?assertEqual(2500, ?C:get(min_interval_ms)),
    application:set_env(beamdeck_agent, min_interval_ms, 2500.0),
    ?assertEqual(1000, ?C:get(min_interval_ms)),
    ?assertEqual(0, length([ok || #{key := top_n} <- ?C:problems()])),
    application:set_env(beamdeck_agent, top_n, -1),
    ?assertEqual(20, ?C:get(top_n)).

os_schema() ->
    os:putenv("BEAMDECK_TLS_VERIFY", "maybe"),
    ?assertEqual(true, ?C:tls_verify()),
    ?assertEqual([#{key => tls_verify, value => "maybe", source => "OS env BEAMDECK_TLS_VERIFY",
                    expected => "true or false", default => true}], ?C:problems()),
    %% The OS variable is checked, not the application env behind it.
    application:set_env(beamdeck_agent, tls_verify, false),
    ?assertEqual(true, ?C:tls_verify()),
    os:putenv("BEAMDECK_TLS_VERIFY", "off"),
    ?assertEqual(false, ?C:tls_verify()),
    ?assertEqual([], ?C:problems()),
    application:set_env(beamdeck_agent, token, [1, 2, 3]),
    ?assertEqual(undefined, ?C:token()),
    ?assertMatch([#{key := token, expected := "a string"}], ?C:problems()).

check_logs() ->
    application:set_env(beamdeck_agent, budget_10k, 0),
    application:set_env(beamdeck_agent, min_interval_ms, 10),
    application:set_env(beamdeck_agent, no_such_key, 1),
    Lines = capture_log(fun() -> ?assertEqual(2, length(?C:check())) end),
    ?assertEqual(3, length(Lines)),
    [Budget] = [L || "beamdeck_agent config: budget_10k " ++ _ = L <- Lines],
    ?assertEqual("beamdeck_agent config: budget_10k = 0 (application env) is invalid: "
                 "expected a number > 0 and =< 1; using the default 0.01", Budget),
    [Interval] = [L || "beamdeck_agent config: min_interval_ms " ++ _ = L <- Lines],
    ?assertEqual("beamdeck_agent config: min_interval_ms = 10 (application env) is invalid: "
                 "expected an integer from 1000 to 60000; using the default 1000", Interval),
    ?assertEqual(1, length([L || L <- Lines, string:find(L, "unknown key no_such_key") =/= nomatch])),
    %% A clean config logs nothing.
    [application:unset_env(beamdeck_agent, K) || K <- [budget_10k, min_interval_ms, no_such_key]],
    ?assertEqual([], capture_log(fun() -> ?assertEqual([], ?C:check()) end)).

%% Before the schema, budget 0 made every tick crash with badarith.
sampler_zero_budget() ->
    application:set_env(beamdeck_agent, budget_10k, 0),
    application:set_env(beamdeck_agent, budget_100k, 0),
    ?assertEqual(0.01, beamdeck_agent_sampler:budget(5000)),
    ?assertEqual(0.05, beamdeck_agent_sampler:budget(200000)),
    ?assertEqual(5000, beamdeck_agent_sampler:interval_ms(50000, 5000)).

schema_defaults_are_valid_test() ->
    Schema = ?C:schema(),
    ?assertEqual(length(Schema), length(lists:usort([K || #{key := K} <- Schema]))),
    [?assertMatch({ok, _}, ?C:validate(T, D), K) || #{key := K, type := T, default := D} <- Schema],
    %% Every interval has a floor of at least a second.
    [?assertMatch({integer, Min, _} when Min >= 1000, T, K)
     || #{key := K, type := T} <- Schema, lists:suffix("_ms", atom_to_list(K))].

doc_table_test() ->
    Table = ?C:doc_table(),
    [?assertNotEqual(nomatch, string:find(Table, ["| `", atom_to_list(K), "` |"]), K)
     || #{key := K} <- ?C:schema()],
    ?assertNotEqual(nomatch, string:find(Table, "| `budget_10k` |  | `0.01` | a number > 0 and =< 1 |")),
    ?assertNotEqual(nomatch, string:find(Table, "| `url` | `BEAMDECK_URL` | unset | a string |")).

%% Log lines written while Fun runs, as flat strings, through a temporary
%% logger handler (this module's log/2).
capture_log(Fun) ->
    Id = bd_config_test_capture,
    ok = logger:add_handler(Id, ?MODULE, #{config => #{pid => self()}, level => all}),
    try
        Fun(),
        collect_log([])
    after
        logger:remove_handler(Id)
    end.

collect_log(Acc) ->
    receive {bd_log, Line} -> collect_log([Line | Acc])
    after 200 -> lists:reverse(Acc)
    end.

%% logger handler callback for capture_log/1.
log(#{msg := Msg}, #{config := #{pid := Pid}}) ->
    Line = case Msg of
               {string, S} -> S;
               {report, R} -> io_lib:format("~tp", [R]);
               {Format, Args} -> io_lib:format(Format, Args)
           end,
    Pid ! {bd_log, unicode:characters_to_list(Line)}.
