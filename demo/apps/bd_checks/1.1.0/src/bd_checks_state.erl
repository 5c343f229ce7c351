%%% @doc A supervised server keeping a list of items and their total (1.1.0).
%%% code_change/3 sums the items: it crashes (badarith) on a state holding
%%% an item that is not a number.
-module(bd_checks_state).
-behaviour(gen_server).

-export([start_link/0, add/1, reset/0, items/0, total/0]).
-export([init/1, handle_call/3, handle_cast/2, code_change/3]).

%% @doc Starts the server, registered.
-spec start_link() -> {ok, pid()}.
start_link() -> gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Adds a number.
-spec add(number()) -> ok.
add(Item) -> gen_server:call(?MODULE, {add, Item}).

%% @doc Forgets every item.
-spec reset() -> ok.
reset() -> gen_server:call(?MODULE, reset).

%% @doc The items, newest first.
-spec items() -> [number()].
items() -> gen_server:call(?MODULE, items).

%% @doc The sum of the items.
-spec total() -> number().
total() -> gen_server:call(?MODULE, total).

%% @private
init([]) -> {ok, #{items => [], total => 0}}.

%% @private
handle_call({add, I}, _From, #{items := Is, total := T} = S) ->
    {reply, ok, S#{items := [I | Is], total := T + I}};
handle_call(reset, _From, S) -> {reply, ok, S#{items := [], total := 0}};
handle_call(items, _From, #{items := Is} = S) -> {reply, Is, S};
handle_call(total, _From, #{total := T} = S) -> {reply, T, S}.

%% @private
handle_cast(_Msg, S) -> {noreply, S}.

%% @private
code_change({down, _}, S, _Extra) -> {ok, maps:with([items], S)};
code_change(_Old, #{items := Is} = S, _Extra) -> {ok, S#{total => sum(Is)}}.

sum(Is) -> lists:foldl(fun(I, Acc) -> I + Acc end, 0, Is).
