%%% @doc Observer's system views, as terms: the node overview, ETS tables
%%% and ports/sockets (docs/protocol.md, "System views").
%%%
%%% The process is a gen_server only to keep scheduler wall-time
%%% measurement enabled (the flag is reference-counted per process since
%%% OTP 22: ours never switches off a host's) and to remember the previous
%%% wall-time sample, so that each overview carries the utilisation since
%%% the one before. Everything else is a pure collector, run in the
%%% request worker that `beamdeck_agent_conn' kills on timeout.
%%%
%%% Every collection is bounded: at most `?MAX_SCAN' tables or ports are
%%% looked at per request and at most `?MAX_LIMIT' are returned; the reply
%%% says how many exist and whether the scan stopped early.
-module(beamdeck_agent_system).

-behaviour(gen_server).

-export([start_link/0, overview/0, ets_tables/1, ports/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-ifdef(TEST).
-export([utilisation/2, port_kind/1, sort_rows/3]).
-endif.

-define(MAX_SCAN, 100000).
-define(MAX_LIMIT, 1000).
-define(DEFAULT_LIMIT, 100).
-define(CALL_TIMEOUT, 2000).

-type wall() :: [{pos_integer(), non_neg_integer(), non_neg_integer()}] | undefined.

%%% API %%%

%% @doc Start the system-view process, registered as `beamdeck_agent_system'.
-spec start_link() -> {ok, pid()} | ignore | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc The node overview: memory by type, counts against their limits, run
%% queues, scheduler utilisation since the previous overview, I/O, GC and
%% reductions. Without the process (a partial start) utilisation is `null'.
%% Not under the budget's memo (beamdeck_agent_budget): it reads counters
%% only, ~0.2 ms whatever the process count (measured at 10k and 100k), and
%% its utilisation is "since the previous overview".
-spec overview() -> {ok, map()}.
overview() ->
    Util =
        try gen_server:call(?MODULE, utilisation, ?CALL_TIMEOUT)
        catch exit:_ -> null
        end,
    {ok, (collect_overview())#{schedulerUtilization => Util}}.

%% @doc ETS tables, largest first. Params: `sort' (`<<"memory">>',
%% `<<"size">>' or `<<"name">>'), `limit' (1..1000, default 100).
-spec ets_tables(Params) -> {ok, map()} | {error, bad_request, binary()} when Params :: map().
ets_tables(Params) ->
    case options(Params, [<<"memory">>, <<"size">>, <<"name">>]) of
        {ok, Sort, Limit} ->
            {Tabs, Total, Partial} = take(ets:all(), ?MAX_SCAN),
            Rows = [R || T <- Tabs, R <- [ets_row(T)], R =/= skip],
            {ok, #{total => Total, scanned => length(Tabs), partial => Partial,
                   wordSize => erlang:system_info(wordsize),
                   tables => sort_rows(Rows, Sort, Limit)}};
        {error, _, _} = Err -> Err
    end.

%% @doc Ports and sockets, busiest first. Params: `sort' (`<<"io">>',
%% `<<"input">>', `<<"output">>' or `<<"name">>'), `limit' (1..1000).
-spec ports(Params) -> {ok, map()} | {error, bad_request, binary()} when Params :: map().
ports(Params) ->
    case options(Params, [<<"io">>, <<"input">>, <<"output">>, <<"name">>]) of
        {ok, Sort, Limit} ->
            {Ports, Total, Partial} = take(erlang:ports(), ?MAX_SCAN),
            Rows = [R || P <- Ports, R <- [port_row(P)], R =/= skip],
            {ok, #{total => Total, scanned => length(Ports), partial => Partial,
                   ports => sort_rows(Rows, Sort, Limit)}};
        {error, _, _} = Err -> Err
    end.

%%% gen_server %%%

%% @private
-spec init([]) -> {ok, wall()}.
init([]) ->
    _ = erlang:system_flag(scheduler_wall_time, true),
    %% This process lives as long as the agent: it owns the budget's memo
    %% and the old-code scan's known pids.
    ok = beamdeck_agent_budget:new_table(),
    ok = beamdeck_agent_old_code:new_table(),
    {ok, erlang:statistics(scheduler_wall_time)}.

%% @private
-spec handle_call(term(), gen_server:from(), wall()) -> {reply, term(), wall()}.
handle_call(utilisation, _From, Prev) ->
    Now = erlang:statistics(scheduler_wall_time),
    {reply, utilisation(Prev, Now), Now};
handle_call(_Other, _From, Prev) ->
    {reply, {error, unknown_call}, Prev}.

%% @private
-spec handle_cast(term(), wall()) -> {noreply, wall()}.
handle_cast(_Msg, S) -> {noreply, S}.

%% @private
-spec handle_info(term(), wall()) -> {noreply, wall()}.
handle_info(_Msg, S) -> {noreply, S}.

%% @private
-spec terminate(term(), wall()) -> ok.
terminate(_Reason, _S) ->
    _ = erlang:system_flag(scheduler_wall_time, false),
    ok.

%%% OVERVIEW %%%

collect_overview() ->
    Mem = maps:from_list(erlang:memory()),
    {{input, In}, {output, Out}} = erlang:statistics(io),
    {GcCount, GcWords, _} = erlang:statistics(garbage_collection),
    {Reds, _} = erlang:statistics(reductions),
    {Switches, _} = erlang:statistics(context_switches),
    {UptimeMs, _} = erlang:statistics(wall_clock),
    RunQueues = erlang:statistics(run_queue_lengths_all),
    #{at => erlang:system_time(millisecond),
      uptimeMs => UptimeMs,
      otpRelease => list_to_binary(erlang:system_info(otp_release)),
      schedulers => erlang:system_info(schedulers),
      schedulersOnline => erlang:system_info(schedulers_online),
      dirtyCpuSchedulers => erlang:system_info(dirty_cpu_schedulers),
      memory => #{total => maps:get(total, Mem, 0),
                  processes => maps:get(processes, Mem, 0),
                  processesUsed => maps:get(processes_used, Mem, 0),
                  system => maps:get(system, Mem, 0),
                  atom => maps:get(atom, Mem, 0),
                  atomUsed => maps:get(atom_used, Mem, 0),
                  binary => maps:get(binary, Mem, 0),
                  code => maps:get(code, Mem, 0),
                  ets => maps:get(ets, Mem, 0)},
      counts => #{processes => count_limit(process_count, process_limit),
                  ports => count_limit(port_count, port_limit),
                  atoms => count_limit(atom_count, atom_limit),
                  ets => count_limit(ets_count, ets_limit)},
      runQueue => lists:sum(RunQueues),
      runQueues => lists:sublist(RunQueues, 1024),
      io => #{input => beamdeck_agent_terms:int(In), output => beamdeck_agent_terms:int(Out)},
      gc => #{count => beamdeck_agent_terms:int(GcCount), wordsReclaimed => beamdeck_agent_terms:int(GcWords)},
      reductions => beamdeck_agent_terms:int(Reds),
      contextSwitches => beamdeck_agent_terms:int(Switches)}.

count_limit(Count, Limit) ->
    #{count => erlang:system_info(Count), limit => erlang:system_info(Limit)}.

%% @doc Busy share per normal scheduler between two wall-time samples
%% (0.0..1.0) and their mean; `null' when either sample is missing.
-spec utilisation(wall(), wall()) -> null | map().
utilisation(Prev, Now) when is_list(Prev), is_list(Now) ->
    Schedulers = erlang:system_info(schedulers),
    Pairs = lists:zip(lists:sublist(lists:sort(Prev), Schedulers), lists:sublist(lists:sort(Now), Schedulers)),
    Per = [share(A1 - A0, T1 - T0) || {{_, A0, T0}, {_, A1, T1}} <- Pairs],
    case Per of
        [] -> null;
        _ -> #{total => lists:sum(Per) / length(Per), perScheduler => Per}
    end;
utilisation(_, _) ->
    null.

share(_Active, Total) when Total =< 0 -> 0.0;
share(Active, Total) -> min(1.0, max(0.0, Active / Total)).

%%% ETS %%%

ets_row(T) ->
    case ets:info(T) of
        undefined -> skip;
        Info ->
            Owner = proplists:get_value(owner, Info),
            #{id => beamdeck_agent_terms:id_text(T),
              name => beamdeck_agent_terms:id_text(proplists:get_value(name, Info)),
              named => proplists:get_value(named_table, Info, false),
              owner => beamdeck_agent_terms:maybe_pid(Owner),
              ownerName => registered_name(Owner),
              heir => heir(proplists:get_value(heir, Info, none)),
              type => proplists:get_value(type, Info),
              protection => proplists:get_value(protection, Info),
              size => proplists:get_value(size, Info, 0),
              memory => proplists:get_value(memory, Info, 0) * erlang:system_info(wordsize),
              compressed => proplists:get_value(compressed, Info, false),
              readConcurrency => proplists:get_value(read_concurrency, Info, false),
              writeConcurrency => concurrency(proplists:get_value(write_concurrency, Info, false))}
    end.

heir(none) -> null;
heir(Pid) when is_pid(Pid) -> beamdeck_agent_terms:pid(Pid);
heir(_) -> null.

%% OTP 25+ may say `auto'; JSON gets true/false/"auto".
concurrency(B) when is_boolean(B) -> B;
concurrency(Other) -> beamdeck_agent_terms:id_text(Other).

%%% PORTS %%%

port_row(P) ->
    case erlang:port_info(P) of
        undefined -> skip;
        Info ->
            Name = proplists:get_value(name, Info, ""),
            Owner = proplists:get_value(connected, Info),
            Kind = port_kind(Name),
            {Input, Output} = io_bytes(Kind, P, Info),
            Base = #{id => beamdeck_agent_terms:pid(P),
                     name => unicode:characters_to_binary(Name),
                     kind => Kind,
                     owner => beamdeck_agent_terms:maybe_pid(Owner),
                     ownerName => registered_name(Owner),
                     osPid => os_pid(proplists:get_value(os_pid, Info, undefined)),
                     input => beamdeck_agent_terms:int(Input),
                     output => beamdeck_agent_terms:int(Output),
                     io => beamdeck_agent_terms:int(Input + Output),
                     local => null,
                     peer => null},
            case Kind of
                K when K =:= tcp; K =:= udp; K =:= sctp -> Base#{local => address(inet:sockname(P)), peer => address(inet:peername(P))};
                _ -> Base
            end
    end.

%% @doc What kind of port a driver name stands for.
-spec port_kind(string()) -> tcp | udp | sctp | file | spawn | fd | other.
port_kind("tcp_inet") -> tcp;
port_kind("udp_inet") -> udp;
port_kind("sctp_inet") -> sctp;
port_kind("efile") -> file;
port_kind("forker") -> spawn;
port_kind("fd") -> fd;
port_kind("0/1") -> fd;
port_kind(Name) ->
    %% Spawned programs are named by their command line.
    case lists:prefix("inet_gethost", Name) orelse lists:member($/, Name) orelse lists:member($\s, Name) of
        true -> spawn;
        false -> other
    end.

%% The inet drivers keep their own byte counters; port_info's stay 0 for them.
io_bytes(Kind, P, _Info) when Kind =:= tcp; Kind =:= udp; Kind =:= sctp ->
    case inet:getstat(P, [recv_oct, send_oct]) of
        {ok, Stats} -> {proplists:get_value(recv_oct, Stats, 0), proplists:get_value(send_oct, Stats, 0)};
        {error, _} -> {0, 0}
    end;
io_bytes(_Kind, _P, Info) ->
    {proplists:get_value(input, Info, 0), proplists:get_value(output, Info, 0)}.

os_pid(N) when is_integer(N) -> N;
os_pid(_) -> null.

address({ok, {Ip, Port}}) when is_tuple(Ip), is_integer(Port) ->
    iolist_to_binary([inet:ntoa(Ip), ":", integer_to_list(Port)]);
address({ok, {local, Path}}) -> iolist_to_binary(["local:", Path]);
address(_) -> null.

%%% HELPERS %%%

options(Params, Sorts) ->
    Sort = maps:get(<<"sort">>, Params, hd(Sorts)),
    Limit = maps:get(<<"limit">>, Params, ?DEFAULT_LIMIT),
    case lists:member(Sort, Sorts) of
        false -> {error, bad_request, iolist_to_binary(["sort must be one of ", lists:join(", ", Sorts)])};
        true when not is_integer(Limit); Limit < 1; Limit > ?MAX_LIMIT ->
            {error, bad_request, <<"limit must be an integer from 1 to 1000">>};
        true -> {ok, Sort, Limit}
    end.

%% The first Max of a list, its length and whether it was cut.
take(List, Max) ->
    Total = length(List),
    {lists:sublist(List, Max), Total, Total > Max}.

%% @doc Rows sorted by a key (largest first; names A–Z), the first Limit.
-spec sort_rows([map()], binary(), pos_integer()) -> [map()].
sort_rows(Rows, <<"name">>, Limit) ->
    lists:sublist(lists:sort(fun(A, B) -> maps:get(name, A) =< maps:get(name, B) end, Rows), Limit);
sort_rows(Rows, Key, Limit) ->
    K = binary_to_existing_atom(Key, utf8),
    lists:sublist(lists:sort(fun(A, B) -> maps:get(K, A) >= maps:get(K, B) end, Rows), Limit).

registered_name(Pid) when is_pid(Pid) ->
    case erlang:process_info(Pid, registered_name) of
        {registered_name, Name} when is_atom(Name) -> atom_to_binary(Name, utf8);
        _ -> null
    end;
registered_name(_) ->
    null.
