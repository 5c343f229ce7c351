%%% @doc The counter, version 1.1.0: the state is a map that also says since
%%% when the server has been counting. code_change/3 turns the 1.0.0 integer
%%% into the map (and back on downgrade), so the process survives the upgrade.
-module(bd_counter_server).
-behaviour(gen_server).

-export([start_link/0, bump/0, value/0, vsn/0]).
-export([init/1, handle_call/3, handle_cast/2, code_change/3]).

-define(TIMEOUT, 5000).

-type state() :: #{count := non_neg_integer(), since := integer()}.

%% @doc Starts the server, registered as `bd_counter_server'.
-spec start_link() -> {ok, pid()} | ignore | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Adds one and returns the new count.
-spec bump() -> Count when Count :: non_neg_integer().
bump() ->
    gen_server:call(?MODULE, bump, ?TIMEOUT).

%% @doc The current count.
-spec value() -> Count when Count :: non_neg_integer().
value() ->
    gen_server:call(?MODULE, value, ?TIMEOUT).

%% @doc The code version this module was built from.
-spec vsn() -> Vsn when Vsn :: string().
vsn() ->
    "1.1.0".

%% @private
-spec init(Args) -> {ok, state()} when Args :: [].
init([]) ->
    {ok, #{count => 0, since => erlang:system_time(millisecond)}}.

%% @private
-spec handle_call(Request, From, State) -> {reply, non_neg_integer(), state()} when
      Request :: bump | value,
      From :: gen_server:from(),
      State :: state().
handle_call(bump, _From, #{count := Count} = State) ->
    {reply, Count + 1, State#{count := Count + 1}};
handle_call(value, _From, #{count := Count} = State) ->
    {reply, Count, State}.

%% @private
-spec handle_cast(Msg, State) -> {noreply, state()} when
      Msg :: term(),
      State :: state().
handle_cast(_Msg, State) ->
    {noreply, State}.

%% @private Upgrade from 1.0.0: the integer count becomes the map; the
%% downgrade drops `since'.
-spec code_change(OldVsn, State, Extra) -> {ok, state() | non_neg_integer()} when
      OldVsn :: term(),
      State :: non_neg_integer() | state(),
      Extra :: term().
code_change({down, _Vsn}, #{count := Count}, _Extra) ->
    {ok, Count};
code_change(_OldVsn, Count, _Extra) when is_integer(Count) ->
    {ok, #{count => Count, since => erlang:system_time(millisecond)}};
code_change(_OldVsn, #{count := _} = State, _Extra) ->
    {ok, State}.
