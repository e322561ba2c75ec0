package redisclientbench

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/valkey-io/valkey-go"
)

// releaseSrc is redisstore's compare-and-delete release.
const releaseSrc = `
if redis.call("GET", KEYS[1]) == ARGV[1] then
	redis.call("DEL", KEYS[1])
	redis.call("PUBLISH", ARGV[2], "released")
	return 1
end
return 0`

// client is what redisstore does with Redis, once per library.
type client interface {
	get(ctx context.Context, key string) (string, error) // "" and nil on a miss
	set(ctx context.Context, key, value string, ttl time.Duration) error
	lease(ctx context.Context, key, owner string, ttl time.Duration) (bool, error)
	release(ctx context.Context, key, owner, channel string) error
	publish(ctx context.Context, channel, msg string) error
	// subscribe returns once the subscription is confirmed; wait returns
	// at the next message; stop unsubscribes.
	subscribe(ctx context.Context, channel string) (wait func(context.Context) error, stop func() error, err error)
	close()
}

type goRedis struct{ c *redis.Client }

var goRedisRelease = redis.NewScript(releaseSrc)

func newGoRedis(addr string) (client, error) {
	return goRedis{redis.NewClient(&redis.Options{Addr: addr})}, nil
}

func (g goRedis) get(ctx context.Context, key string) (string, error) {
	v, err := g.c.Get(ctx, key).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return v, err
}

func (g goRedis) set(ctx context.Context, key, value string, ttl time.Duration) error {
	return g.c.Set(ctx, key, value, ttl).Err()
}

func (g goRedis) lease(ctx context.Context, key, owner string, ttl time.Duration) (bool, error) {
	return g.c.SetNX(ctx, key, owner, ttl).Result()
}

func (g goRedis) release(ctx context.Context, key, owner, channel string) error {
	return goRedisRelease.Run(ctx, g.c, []string{key}, owner, channel).Err()
}

func (g goRedis) publish(ctx context.Context, channel, msg string) error {
	return g.c.Publish(ctx, channel, msg).Err()
}

// subscribe is redisstore.Wait's pattern: Subscribe, Receive the
// confirmation, then read Channel.
func (g goRedis) subscribe(ctx context.Context, channel string) (func(context.Context) error, func() error, error) {
	sub := g.c.Subscribe(ctx, channel)
	if _, err := sub.Receive(ctx); err != nil {
		sub.Close()
		return nil, nil, err
	}
	msgs := sub.Channel()
	wait := func(ctx context.Context) error {
		select {
		case <-msgs:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return wait, sub.Close, nil
}

func (g goRedis) close() { g.c.Close() }

type valkeyGo struct{ c valkey.Client }

var valkeyRelease = valkey.NewLuaScript(releaseSrc)

func newValkey(addr string) (client, error) {
	c, err := valkey.NewClient(valkey.ClientOption{InitAddress: []string{addr}})
	if err != nil {
		return nil, err
	}
	return valkeyGo{c}, nil
}

func (v valkeyGo) get(ctx context.Context, key string) (string, error) {
	s, err := v.c.Do(ctx, v.c.B().Get().Key(key).Build()).ToString()
	if valkey.IsValkeyNil(err) {
		return "", nil
	}
	return s, err
}

// getCached is a GET served by client-side caching (CLIENT TRACKING).
func (v valkeyGo) getCached(ctx context.Context, key string) (string, error) {
	s, err := v.c.DoCache(ctx, v.c.B().Get().Key(key).Cache(), time.Minute).ToString()
	if valkey.IsValkeyNil(err) {
		return "", nil
	}
	return s, err
}

func (v valkeyGo) set(ctx context.Context, key, value string, ttl time.Duration) error {
	return v.c.Do(ctx, v.c.B().Set().Key(key).Value(value).Px(ttl).Build()).Error()
}

func (v valkeyGo) lease(ctx context.Context, key, owner string, ttl time.Duration) (bool, error) {
	err := v.c.Do(ctx, v.c.B().Set().Key(key).Value(owner).Nx().Px(ttl).Build()).Error()
	if valkey.IsValkeyNil(err) {
		return false, nil
	}
	return err == nil, err
}

func (v valkeyGo) release(ctx context.Context, key, owner, channel string) error {
	return valkeyRelease.Exec(ctx, v.c, []string{key}, []string{owner, channel}).Error()
}

func (v valkeyGo) publish(ctx context.Context, channel, msg string) error {
	return v.c.Do(ctx, v.c.B().Publish().Channel(channel).Message(msg).Build()).Error()
}

// subscribe runs Receive in a goroutine, learns of the confirmation by
// WithOnSubscriptionHook, and stops by UNSUBSCRIBE (on RESP3 the
// subscription shares the client's pipelined connection).
func (v valkeyGo) subscribe(ctx context.Context, channel string) (func(context.Context) error, func() error, error) {
	msgs := make(chan struct{}, 1024)
	subscribed := make(chan struct{})
	var once sync.Once
	rctx := valkey.WithOnSubscriptionHook(ctx, func(s valkey.PubSubSubscription) {
		if s.Kind == "subscribe" {
			once.Do(func() { close(subscribed) })
		}
	})
	done := make(chan error, 1)
	go func() {
		done <- v.c.Receive(rctx, v.c.B().Subscribe().Channel(channel).Build(), func(valkey.PubSubMessage) {
			select {
			case msgs <- struct{}{}:
			default:
			}
		})
	}()
	select {
	case <-subscribed:
	case err := <-done:
		return nil, nil, err
	}
	wait := func(ctx context.Context) error {
		select {
		case <-msgs:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	stop := func() error {
		err := v.c.Do(context.Background(), v.c.B().Unsubscribe().Channel(channel).Build()).Error()
		return errors.Join(err, <-done)
	}
	return wait, stop, nil
}

func (v valkeyGo) close() { v.c.Close() }
