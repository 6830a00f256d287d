# Multi-stage build: a static binary on a distroless, non-root base.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd ./cmd
COPY internal ./internal
ARG VERSION=dev
ARG COMMIT=unknown
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X imagebot.dev/imagebot/internal/version.Version=${VERSION} -X imagebot.dev/imagebot/internal/version.Commit=${COMMIT}" \
      -o /out/imagebot ./cmd/imagebot

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/imagebot /imagebot
USER 65532:65532
ENTRYPOINT ["/imagebot"]
