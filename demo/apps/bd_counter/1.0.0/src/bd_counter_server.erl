%%% @doc The counter, version 1.0.0: the state is the count itself.
-module(bd_counter_server).
-behaviour(gen_server).

-export([start_link/0, bump/0, value/0, vsn/0]).
-export([init/1, handle_call/3, handle_cast/2, code_change/3]).

-define(TIMEOUT, 5000).

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
    "1.0.0".

%% @private
-spec init(Args) -> {ok, non_neg_integer()} when Args :: [].
init([]) ->
    {ok, 0}.

%% @private
-spec handle_call(Request, From, Count) -> {reply, non_neg_integer(), non_neg_integer()} when
      Request :: bump | value,
      From :: gen_server:from(),
      Count :: non_neg_integer().
handle_call(bump, _From, Count) ->
    {reply, Count + 1, Count + 1};
handle_call(value, _From, Count) ->
    {reply, Count, Count}.

%% @private
-spec handle_cast(Msg, Count) -> {noreply, non_neg_integer()} when
      Msg :: term(),
      Count :: non_neg_integer().
handle_cast(_Msg, Count) ->
    {noreply, Count}.

%% @private Downgrade from 1.1.0 gets the map back; anything else is kept.
-spec code_change(OldVsn, State, Extra) -> {ok, non_neg_integer()} when
      OldVsn :: term(),
      State :: non_neg_integer() | map(),
      Extra :: term().
code_change({down, _Vsn}, #{count := Count}, _Extra) ->
    {ok, Count};
code_change(_OldVsn, Count, _Extra) when is_integer(Count) ->
    {ok, Count}.
